"""Series from outside: OONI's aggregation API output and IODA's signal exports.

* **OONI aggregation** (``GET /api/v1/aggregation``, ooni-backend.md §9.4), JSON
  (``{"result": [ … ]}``) or CSV (the same columns, flat): a time axis
  ``measurement_start_day`` or ``measurement_start_hour`` (``%Y-%m-%d`` or
  ``%Y-%m-%dT%H:%M:%SZ``; OONI keeps the name ``measurement_start_day`` for hourly grains),
  optionally an ``axis_y`` column (``probe_asn``, ``probe_cc``, ``domain``, ``input``,
  ``test_name``, ``category_code``), and the counts ``anomaly_count``, ``confirmed_count``,
  ``failure_count``, ``ok_count``, ``measurement_count``. Blocked = anomaly + confirmed,
  judged among anomaly + confirmed + ok (failures are no evidence either way); the volume is
  ``measurement_count``.
* **IODA** signal CSV (the dashboard's export): a ``Time (UTC)`` column, then one column per
  signal (BGP, Active Probing, Telescope, Google, …), raw or normalised values, empty cells
  where a signal has no value (missing, not zero).

Bad input raises ``InputError`` with one sentence naming the file (and row).
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from didban.events import grid as gridmod
from didban.events.grid import Grid

TIME_COLUMNS: Final = ("measurement_start_day", "measurement_start_hour")
COUNT_COLUMNS: Final = (
    "anomaly_count",
    "confirmed_count",
    "failure_count",
    "ok_count",
    "measurement_count",
)
AXIS_Y: Final = ("probe_asn", "probe_cc", "domain", "input", "test_name", "category_code")
IODA_TIME: Final = "Time (UTC)"


class InputError(ValueError):
    """A file that is not what its --format says (the message is one sentence)."""


def _read_text(path: Path) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data.strip():
        raise InputError(f"{path} is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None


def parse_time(text: str) -> datetime:
    """A date, an ISO 8601 time (``Z``/offset → UTC, naive = UTC), ``YYYY-MM-DD HH:MM[:SS]``
    or Unix seconds, as a naive UTC datetime; ValueError otherwise."""
    s = text.strip()
    if s.isdigit() and len(s) >= 9:
        return datetime(1970, 1, 1) + timedelta(seconds=int(s))
    t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    if t.tzinfo is not None:
        t = t.replace(tzinfo=None) - (t.utcoffset() or timedelta(0))
    return t


# --- OONI aggregation ---------------------------------------------------------------


@dataclass
class OoniSeries:
    grid: Grid  # keys (cc, asn, target, resolver); counts ok, blocked, n
    cc_given: bool


def _ooni_rows(path: Path, text: str) -> list[dict[str, Any]]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            doc = msgspec.json.decode(text.encode())
        except msgspec.DecodeError as exc:
            raise InputError(f"{path} is not valid JSON ({exc})") from None
        rows = doc.get("result") if isinstance(doc, dict) else doc
        if isinstance(rows, dict):
            raise InputError(
                f"{path} has no time axis: ask the aggregation API with "
                "axis_x=measurement_start_day"
            )
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InputError(f"{path} is not OONI aggregation output (no 'result' list)")
        return rows
    return list(csv.DictReader(io.StringIO(text)))


def _count(path: Path, row_no: int, row: dict[str, Any], col: str) -> float:
    v = row.get(col)
    if v is None or v == "":
        return 0.0
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise InputError(f"{path} row {row_no}: {col} is not a number ({v!r})") from None
    if x < 0 or x != x:
        raise InputError(f"{path} row {row_no}: {col} is negative ({v!r})")
    return x


def _asn(v: Any) -> int | None:
    if v is None or v == "":
        return None
    s = str(v).upper().removeprefix("AS")
    return int(s) if s.isdigit() else None


def read_ooni_aggregation(
    path: Path, cc: str | None = None, step: timedelta | None = None
) -> OoniSeries:
    """The grid of an aggregation file (``cc`` names the country when the file has no
    ``probe_cc`` column; ``step`` overrides the file's own grain)."""
    text = _read_text(path)
    rows = _ooni_rows(path, text)
    if not rows:
        raise InputError(f"{path} holds no rows")
    cols = set(rows[0])
    tcol = next((c for c in TIME_COLUMNS if c in cols), None)
    if tcol is None:
        raise InputError(
            f"{path} has no measurement_start_day or measurement_start_hour column "
            f"(columns: {', '.join(sorted(cols)) or 'none'})"
        )
    missing = [c for c in ("anomaly_count", "ok_count", "measurement_count") if c not in cols]
    if missing:
        raise InputError(f"{path} lacks the column(s) {', '.join(missing)}")
    times: list[datetime] = []
    hourly = False
    for i, r in enumerate(rows, 1):
        raw = r.get(tcol)
        try:
            times.append(parse_time(str(raw)))
        except ValueError:
            raise InputError(f"{path} row {i}: {tcol} {raw!r} is not a date or time") from None
        hourly = hourly or ("T" in str(raw) and not str(raw).endswith("T00:00:00Z"))
    grain = step or (timedelta(hours=1) if hourly else timedelta(days=1))
    start = gridmod.floor_time(min(times), grain)
    n_buckets = (gridmod.floor_time(max(times), grain) - start) // grain + 1
    keys: list[tuple[Any, ...]] = []
    buckets: list[int] = []
    ok: list[float] = []
    blocked: list[float] = []
    volume: list[float] = []
    for i, (r, t) in enumerate(zip(rows, times, strict=True), 1):
        counts = {c: _count(path, i, r, c) for c in COUNT_COLUMNS}
        row_cc = r.get("probe_cc") or cc or "ZZ"
        target = r.get("domain") or r.get("input") or r.get("test_name") or r.get("category_code")
        keys.append((str(row_cc), _asn(r.get("probe_asn")), target or None, ""))
        buckets.append((t - start) // grain)
        ok.append(counts["ok_count"])
        blocked.append(counts["anomaly_count"] + counts["confirmed_count"])
        volume.append(counts["measurement_count"])
    g = gridmod.build_keyed(
        start,
        grain,
        int(n_buckets),
        ("cc", "asn", "target", "resolver"),
        keys,
        buckets,
        {"ok": ok, "blocked": blocked, "n": volume},
    )
    return OoniSeries(g, cc is not None or "probe_cc" in cols)


# --- IODA ---------------------------------------------------------------------------


@dataclass
class IodaSeries:
    times: list[datetime]
    step: timedelta
    signals: dict[str, npt.NDArray[np.float64]]  # NaN where the cell was empty


def read_ioda(path: Path) -> IodaSeries:
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InputError(f"{path} is empty") from None
    if not header or header[0] != IODA_TIME:
        raise InputError(
            f"{path} is not an IODA signal export: its first column is "
            f"{header[0] if header else 'missing'!r}, not {IODA_TIME!r}"
        )
    names = header[1:]
    if not names or any(not n for n in names):
        raise InputError(f"{path} names no signal after {IODA_TIME!r}")
    times: list[datetime] = []
    columns: list[list[float]] = [[] for _ in names]
    for row_no, row in enumerate(reader, 2):
        if not row or not any(c.strip() for c in row):
            continue
        try:
            times.append(parse_time(row[0]))
        except ValueError:
            raise InputError(f"{path} line {row_no}: {row[0]!r} is not a time") from None
        for j in range(len(names)):
            cell = row[j + 1].strip() if j + 1 < len(row) else ""
            if not cell:
                columns[j].append(float("nan"))
                continue
            try:
                x = float(cell)
            except ValueError:
                raise InputError(
                    f"{path} line {row_no}: {names[j]} value {cell!r} is not a number"
                ) from None
            if x < 0:
                raise InputError(f"{path} line {row_no}: {names[j]} is negative ({cell})")
            columns[j].append(x)
    if not times:
        raise InputError(f"{path} holds no rows")
    if any(b <= a for a, b in itertools.pairwise(times)):
        raise InputError(f"{path}: the times are not in increasing order")
    diffs = [b - a for a, b in itertools.pairwise(times)]
    step = sorted(diffs)[len(diffs) // 2] if diffs else timedelta(minutes=5)
    return IodaSeries(times, step, {n: np.asarray(c) for n, c in zip(names, columns, strict=True)})
