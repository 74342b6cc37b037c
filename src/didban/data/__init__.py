"""Data files (service catalog, fingerprints, default test list, ASN snapshot) and their loaders."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def path(name: str) -> Path:
    """Filesystem path of a shipped data file, e.g. ``path("services.yaml")``."""
    return Path(str(resources.files(__package__).joinpath(name)))
