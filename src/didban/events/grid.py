"""The dense time grid: counts per series and time bucket, every bucket present.

A ``Grid`` holds one row per series (its key in ``keys``) and one column per bucket from
``start`` in steps of ``step``, for each named count (``ok``, ``blocked``, ``probes``, …).
A bucket with no measurement is a zero in every count — it exists, so the detector can
read silence as a signal (OONI's detector skips empty hours; event-detection.md §4.2).
Pure data, no I/O: readers (``series``, ``readers``) build grids; the detector reads them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt

Counts = npt.NDArray[np.float64]

_BUCKET_RE: Final = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS: Final = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}


def parse_bucket(text: str) -> timedelta:
    """``1h`` (the default), ``1d``, ``1m``, ``10m``, ``20s`` (a short lab scenario), … as a
    timedelta; ValueError otherwise."""
    m = _BUCKET_RE.match(text)
    if not m or int(m.group(1)) == 0:
        raise ValueError(
            f"a bucket is a number and s, m, h or d (20s, 1m, 10m, 1h, 1d), not {text!r}"
        )
    return int(m.group(1)) * _UNITS[m.group(2)]


def floor_time(t: datetime, step: timedelta) -> datetime:
    """``t`` rounded down to a multiple of ``step`` since the Unix epoch."""
    epoch = datetime(1970, 1, 1)
    return epoch + ((t - epoch) // step) * step


@dataclass
class Grid:
    """Counts per (series, bucket). ``keys[i]`` names row ``i`` of every array."""

    start: datetime
    step: timedelta
    n_buckets: int
    key_names: tuple[str, ...]
    keys: list[tuple[Any, ...]]
    counts: dict[str, Counts] = field(default_factory=dict)

    @property
    def n_series(self) -> int:
        return len(self.keys)

    def time(self, bucket: int) -> datetime:
        return self.start + bucket * self.step

    def bucket_of(self, t: datetime) -> int:
        return int((t - self.start) // self.step)

    def __getitem__(self, name: str) -> Counts:
        return self.counts[name]

    def key(self, row: int) -> dict[str, Any]:
        return dict(zip(self.key_names, self.keys[row], strict=True))

    def rows(self) -> list[dict[str, Any]]:
        """The grid as long rows (one per series and non-empty bucket), for output."""
        out: list[dict[str, Any]] = []
        names = list(self.counts)
        total = np.zeros((self.n_series, self.n_buckets))
        for n in names:
            total += self.counts[n]
        for i, j in zip(*np.nonzero(total), strict=True):
            row = self.key(int(i))
            row["t"] = self.time(int(j))
            row.update({n: int(self.counts[n][i, j]) for n in names})
            out.append(row)
        return out


def build(
    start: datetime,
    step: timedelta,
    n_buckets: int,
    key_names: Sequence[str],
    keys: list[tuple[Any, ...]],
    sid: npt.NDArray[np.int64],
    bucket: npt.NDArray[np.int64],
    values: Mapping[str, npt.ArrayLike],
) -> Grid:
    """A dense grid from long columns: the series index of each row (into ``keys``), its
    bucket index and its counts. Rows with the same series and bucket are added; buckets
    outside ``[0, n_buckets)`` are dropped."""
    sid = np.asarray(sid, dtype=np.int64)
    bucket = np.asarray(bucket, dtype=np.int64)
    keep = (bucket >= 0) & (bucket < n_buckets)
    flat = sid[keep] * n_buckets + bucket[keep]
    size = len(keys) * n_buckets
    counts: dict[str, Counts] = {}
    for name, v in values.items():
        weights = np.asarray(v, dtype=np.float64)[keep]
        summed = np.bincount(flat, weights=weights, minlength=size).astype(np.float64)
        counts[name] = summed.reshape(len(keys), n_buckets)
    return Grid(start, step, n_buckets, tuple(key_names), keys, counts)


def build_keyed(
    start: datetime,
    step: timedelta,
    n_buckets: int,
    key_names: Sequence[str],
    row_keys: Sequence[tuple[Any, ...]],
    bucket: Sequence[int],
    values: Mapping[str, Sequence[float]],
) -> Grid:
    """``build`` for small inputs keyed by tuples (file readers): the series are sorted."""
    keys = sorted(set(row_keys), key=_sort_key)
    index = {k: i for i, k in enumerate(keys)}
    sid = np.fromiter((index[k] for k in row_keys), dtype=np.int64, count=len(row_keys))
    return build(
        start, step, n_buckets, key_names, keys, sid, np.asarray(bucket, dtype=np.int64), values
    )


def _sort_key(k: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, "" if v is None else v) for v in k)
