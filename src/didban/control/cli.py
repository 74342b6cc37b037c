"""Commands of ``didban.control``; ``register(app)`` adds them to the ``didban`` command."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
