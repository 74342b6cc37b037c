"""``didban demo``: the Iran lab measured end to end (lab up, probe, analysis, report, lab down)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``didban demo`` to ``app``."""
