"""Which files are measurement files, by name, and walking directories for them.

A measurement file is JSONL (``.jsonl``, ``.ndjson``: one measurement per line) or JSON
(``.json``: one document, or JSONL under that name), plain or compressed with gzip
(``.gz``) or Zstandard (``.zst``). Directories are walked recursively, in sorted order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

SUFFIXES: Final = (".jsonl", ".json", ".ndjson")
COMPRESSED: Final = (".gz", ".zst")


def file_kind(path: Path) -> tuple[str, str] | None:
    """(format, compression) for a supported file name — format ``json`` or ``jsonl``,
    compression ``.gz``, ``.zst`` or '' — else None."""
    name = path.name.lower()
    comp = ""
    for c in COMPRESSED:
        if name.endswith(c):
            comp, name = c, name[: -len(c)]
            break
    for s in SUFFIXES:
        if name.endswith(s):
            return ("json" if s == ".json" else "jsonl"), comp
    return None


def supported(path: Path) -> bool:
    return file_kind(path) is not None


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Every supported file under ``paths`` (files as given, directories recursively)."""
    for p in paths:
        if p.is_dir():
            for child in sorted(p.rglob("*")):
                if child.is_file() and supported(child):
                    yield child
        else:
            yield p


def skipped_files(paths: Iterable[Path]) -> list[Path]:
    """The files under the directories among ``paths`` that ``iter_files`` passes over (not
    a measurement file by name), so a caller can say so."""
    return [
        child
        for p in paths
        if p.is_dir()
        for child in sorted(p.rglob("*"))
        if child.is_file() and not supported(child)
    ]
