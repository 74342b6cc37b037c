"""Where verdicts go: JSONL or Parquet files (written atomically), and the summary table.

Writers write to a temporary file beside the target and rename it into place on
``close()``, so an interrupted run never leaves a half-written output; ``abort()``
removes the temporary file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Final, Protocol

import msgspec
from rich.table import Table

from didban.files.outputs import tmp_beside
from didban.model.verdict import Verdict

OUTPUT_SUFFIXES: Final = (".jsonl", ".parquet")
PARQUET_BATCH: Final = 4096


class Writer(Protocol):
    def write(self, verdict: Verdict) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class JSONLWriter:
    def __init__(self, target: Path) -> None:
        self.target = target
        self.tmp = tmp_beside(target)
        self.fh = self.tmp.open("wb")
        self.encoder = msgspec.json.Encoder()

    def write(self, verdict: Verdict) -> None:
        self.fh.write(self.encoder.encode(verdict) + b"\n")

    def close(self) -> None:
        self.fh.close()
        self.tmp.replace(self.target)

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


# Parquet columns: the verdict's scalar fields, evidence as a JSON string.
_COLUMNS: Final = tuple(f for f in Verdict.__struct_fields__)


def verdict_schema(start_time: Any = None) -> Any:
    """The Parquet schema of verdict rows (``pyarrow.Schema``): every field of a ``Verdict``,
    ``blocking`` (``"dns"``, false, null) and ``evidence`` as JSON text, and
    ``measurement_start_time`` as text unless ``start_time`` gives its type (the store keeps
    a timestamp)."""
    import pyarrow as pa

    kinds = {"confidence": pa.float64(), "confirmed": pa.bool_(), "accessible": pa.bool_()}
    if start_time is not None:
        kinds["measurement_start_time"] = start_time
    return pa.schema([(name, kinds.get(name, pa.string())) for name in _COLUMNS])


class ParquetWriter:
    def __init__(self, target: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        self.target = target
        self.tmp = tmp_beside(target)
        self.schema = verdict_schema()
        self.writer = pq.ParquetWriter(str(self.tmp), self.schema)
        self.rows: list[dict[str, Any]] = []

    def write(self, verdict: Verdict) -> None:
        row = {f: getattr(verdict, f) for f in _COLUMNS}
        row["blocking"] = msgspec.json.encode(verdict.blocking).decode()
        row["evidence"] = msgspec.json.encode(verdict.evidence).decode()
        self.rows.append(row)
        if len(self.rows) >= PARQUET_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.writer.write_table(self.pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self._flush()
        self.writer.close()
        self.tmp.replace(self.target)

    def abort(self) -> None:
        self.writer.close()
        self.tmp.unlink(missing_ok=True)


def open_writer(target: Path) -> Writer:
    """A writer for ``target`` chosen by its suffix (.jsonl or .parquet)."""
    suffix = target.suffix.lower()
    if suffix == ".jsonl":
        return JSONLWriter(target)
    if suffix == ".parquet":
        return ParquetWriter(target)
    raise ValueError(f"--output must end in .jsonl or .parquet, not {target.name!r}")


class Summary:
    """Counts per (service, domain, country, state, method) and how many of them were
    confirmed: one service blocked in one country and reachable in another, or blocked on
    one of its domains and not on another, are separate rows."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str, str, str]] = Counter()
        self.confirmed: Counter[tuple[str, str, str, str, str]] = Counter()

    def add(self, v: Verdict) -> None:
        key = (
            v.service or v.domain or v.test_name or "?",
            v.domain or "",
            v.probe_cc or "?",
            v.state,
            v.method or "-",
        )
        self.counts[key] += 1
        if v.confirmed:
            self.confirmed[key] += 1

    def table(self, title: str) -> Table:
        t = Table(
            title=title,
            caption="confirmed: matched a known censor fingerprint (blockpage, injected DNS "
            "answer); the others rest on the failure and the control",
        )
        t.add_column("service", overflow="fold")  # long names wrap; a method never does
        t.add_column("cc", no_wrap=True)
        t.add_column("state", no_wrap=True)
        t.add_column("method", no_wrap=True)
        t.add_column("count", justify="right")
        t.add_column("confirmed", justify="right")
        for row in self.rows():
            t.add_row(*row[:4], str(row[4]), str(row[5]))
        return t

    def rows(self) -> list[tuple[str, str, str, str, int, int]]:
        """(service, cc, state, method, count, confirmed), sorted. A service's domains are
        one row, unless they fared differently in that country (fa. blocked, en.wikipedia
        ok; twitter.com hijacked, x.com reset): then each row names its domain."""
        outcomes: dict[tuple[str, str], set[tuple[str, str]]] = {}
        domains: dict[tuple[str, str], set[str]] = {}
        for name, domain, cc, state, method in self.counts:
            outcomes.setdefault((name, cc), set()).add((state, method))
            domains.setdefault((name, cc), set()).add(domain)
        merged: Counter[tuple[str, str, str, str]] = Counter()
        confirmed: Counter[tuple[str, str, str, str]] = Counter()
        for key, n in self.counts.items():
            name, domain, cc, state, method = key
            split = (
                len(outcomes[(name, cc)]) > 1
                and len(domains[(name, cc)]) > 1
                and domain
                and domain != name
            )
            label = f"{name}: {domain}" if split else name
            merged[(label, cc, state, method)] += n
            confirmed[(label, cc, state, method)] += self.confirmed[key]
        return [(*k, merged[k], confirmed[k]) for k in sorted(merged)]
