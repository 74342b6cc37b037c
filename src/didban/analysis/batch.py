"""Batch classification: measurement files in, verdicts out, streaming.

``didban.files`` reads the records (JSONL and JSON files, plain or compressed, and
directories; in worker processes when ``jobs`` > 1); ``classify_one`` judges each; the
verdicts of one probe run are buffered until the run ends (at most ``nin.MAX_RUN``) so
that run-level rules (NIN isolation, shutdown) can relabel them. A record that is not a
measurement is reported through ``on_error`` as ``file:line: reason`` and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Final

import msgspec

from didban.analysis import nin
from didban.analysis.classify import WEB_TESTS, Malformed, classify_decoded
from didban.analysis.fingerprints import Fingerprints, default
from didban.files.pool import Counts, map_records
from didban.files.reader import Record
from didban.model.verdict import Verdict


def classify_one(
    data: bytes, fps: Fingerprints, by_run: bool
) -> tuple[Verdict, bool, float | None]:
    """One record's verdict, whether it is unreachable without a control and its fetch
    rate (the run-level pass reads these, so it never decodes the bytes a second time).
    Raises ``Malformed``."""
    verdict, decoded = classify_decoded(data, fps)
    if not by_run:
        return verdict, False, None
    m = decoded if decoded is not None else data
    no_control = verdict.rule_id == "wc.control.missing" and (
        nin.unreachable_without_control(m, fps)
    )
    rate = nin.fetch_rate(m) if verdict.test_name in WEB_TESTS else None
    return verdict, no_control, rate


# Verdicts cross from worker processes to the parent as MessagePack: decoding one costs the
# parent (which orders the results and runs the run-level pass) about half what unpickling
# it does (docs/methodology.md, "Caches and special paths").
_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(Verdict)


def _classify_packed(
    data: bytes, fps: Fingerprints, by_run: bool
) -> tuple[bytes, bool, float | None]:
    """``classify_one``, the verdict packed for the trip to the parent process."""
    verdict, no_control, rate = classify_one(data, fps, by_run)
    return _ENCODER.encode(verdict), no_control, rate


def _classified(
    paths: Iterable[Path],
    on_error: Callable[[str], None],
    counts: Counts,
    fps: Fingerprints,
    by_run: bool,
    jobs: int,
) -> Iterator[tuple[Record, tuple[Verdict, bool, float | None]]]:
    """(record, what ``classify_one`` gives) for every record, by ``jobs`` processes."""
    if jobs <= 1:
        work = partial(classify_one, fps=fps, by_run=by_run)
        yield from map_records(paths, work, refuse=(Malformed,), on_error=on_error, counts=counts)
        return
    packed = partial(_classify_packed, fps=fps, by_run=by_run)
    for rec, (raw, no_control, rate) in map_records(
        paths, packed, refuse=(Malformed,), on_error=on_error, counts=counts, jobs=jobs
    ):
        yield rec, (_DECODER.decode(raw), no_control, rate)


def classify_paths(
    paths: Iterable[Path],
    on_error: Callable[[str], None],
    counts: Counts | None = None,
    fingerprints: Fingerprints | None = None,
    *,
    by_run: bool = True,
    jobs: int = 1,
) -> Iterator[tuple[Record, Verdict]]:
    """Verdicts for every measurement under ``paths``; bad records go to ``on_error``.

    With ``by_run`` (the default), the verdicts of each probe run are also judged together
    (``analysis.nin``: NIN isolation, shutdown); they are yielded in input order, a run's
    once the run is complete. With ``jobs`` > 1 the records are classified by that many
    worker processes; verdicts, errors, their order and the counts are the same as with
    one, but the yielded records carry their file and line, not their bytes (``data`` is
    empty).
    """
    fps = fingerprints or default()
    counts = counts if counts is not None else Counts()
    results = _classified(paths, on_error, counts, fps, by_run, jobs)
    if not by_run:
        for rec, (verdict, _, _) in results:
            yield rec, verdict
        return
    runs: nin.Runs[Record] = nin.Runs()
    for rec, (verdict, no_control, rate) in results:
        yield from runs.add(rec, verdict, no_control, rate)
    yield from runs.flush()
