"""Benchmark: ``didban ingest`` end to end on OONI-shaped Web Connectivity files.

Builds a corpus like ``bench/classify_throughput.py``'s OONI-shaped one (DNS, TCP, TLS with
a certificate, HTTP with 4-64 KiB bodies, a control; no ``x_didban_*`` keys), each line
with a ``measurement_uid`` in OONI's scheme, in OONI's archive layout
(``raw/<YYYYMMDD>/<HH>/IR/webconnectivity/<YYYYMMDDHH>_IR_webconnectivity.n0.<k>.jsonl.gz``),
then measures, in one run:

* **floor**: decompression plus a JSON scan alone (msgspec decoding every line into a
  Struct with no fields) of the same files, one process per usable CPU, wall clock: no
  loader that decompresses and reads every byte can be faster;
* **ingest**: ``didban ingest`` in a child process into a new store (admission, content
  hash, classification with the run-level pass, zstd archive with fsync, index, the three
  Parquet tables), wall clock, the CPU time and the peak RSS of its whole process tree (the
  process, its fork server and workers; RSS summed, sampled every 20 ms);
* the ratio ingest / floor (target >= 0.3), measurements/s (target >= 15,000) and the
  peak RSS (target <= 1 GiB). On a shared machine the wall-clock figures follow the
  neighbours; CPU time per measurement does not, so both are printed, with the rate the
  CPU time allows on idle CPUs;
* where the time goes: each step of ``store.derive`` and of the parent timed alone on a
  sample, CPU time per measurement in one process (which keeps its freed memory, as
  ingest's processes do: ``store.heap``), and what sending one block of decompressed
  lines to a worker process costs, both ends together.

Rounds alternate floor and ingest (``--rounds``) so both see the same neighbours; the load
average is printed before and after.

Usage: python bench/ingest_throughput.py [--n 60000] [--files 12] [--rounds 2]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import multiprocessing
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from classify_throughput import MIX, measurement
from didban.files.cpus import usable_cpus
from didban.files.streams import open_file
from didban.files.tasks import CHUNK_BYTES
from didban.store import heap

ROUNDS = 3


class _Nothing(msgspec.Struct):
    """No fields: decoding into it validates and skips every byte of the JSON."""


def build(root: Path, n: int, files: int, distinct: int = 3000) -> list[Path]:
    """``n`` OONI-shaped measurements in ``files`` hourly files of OONI's layout. Bodies
    come from ``distinct`` generated measurements; each line gets its own report, uid and
    start time, so every line is a different measurement."""
    rng = random.Random(4)
    base = [measurement(rng, i, MIX[i % len(MIX)], didban=False) for i in range(distinct)]
    out: list[Path] = []
    per_file = -(-n // files)
    for f in range(files):
        hour = f"20261121{f % 24:02d}"
        d = root / "raw" / hour[:8] / hour[8:] / "IR" / "webconnectivity"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{hour}_IR_webconnectivity.n0.{f // 24}.jsonl.gz"
        lines = []
        for j in range(min(per_file, n - f * per_file)):
            i = f * per_file + j
            m = dict(base[i % distinct])
            start = f"2026-11-21 {hour[8:]}:{(j // 60) % 60:02d}:{j % 60:02d}"
            m["measurement_start_time"] = start
            m["test_start_time"] = start
            m["report_id"] = f"20261121T{hour[8:]}0000Z_webconnectivity_IR_197207_n1_{i // 100:08d}"
            digest = hashlib.sha512(str(i).encode()).hexdigest()[:16]
            m["measurement_uid"] = (
                f"{hour}{(j // 60) % 60:02d}{j % 60:02d}.{j:06d}_IR_webconnectivity_{digest}"
            )
            lines.append(msgspec.json.encode(m))
        path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", 6))
        out.append(path)
    return out


def _scan(path: Path) -> int:
    skip = msgspec.json.Decoder(_Nothing).decode
    n = 0
    with open_file(path) as stream:
        for line in stream:
            if line.strip():
                skip(line)
                n += 1
    return n


def _children_cpu() -> float:
    """CPU seconds of every finished descendant of this process (they are waited for)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def floor(files: list[Path], jobs: int) -> tuple[int, float, float]:
    """(lines, wall seconds, CPU seconds) of decompressing and scanning ``files``."""
    c0, t0 = _children_cpu(), time.perf_counter()
    with ProcessPoolExecutor(jobs) as ex:
        n = sum(ex.map(_scan, files))
    return n, time.perf_counter() - t0, _children_cpu() - c0


_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class _Usage(NamedTuple):
    rss: int  # bytes
    cpu: float  # seconds, user + kernel
    kernel: float  # seconds
    faults: int  # minor page faults


def _tree(root: int) -> dict[int, _Usage]:
    """The usage of ``root`` and of each of its descendants, by pid. Workers started by a
    fork server are its children, not the loader's: walking the tree finds them, where
    ``RUSAGE_CHILDREN`` would not."""
    children: dict[int, list[int]] = {}
    info: dict[int, _Usage] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as fh:
                rss = int(fh.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        user, kernel = int(fields[11]) / _TICK, int(fields[12]) / _TICK
        info[int(entry)] = _Usage(rss, user + kernel, kernel, int(fields[7]))
    out: dict[int, _Usage] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in info:
            out[pid] = info[pid]
        todo.extend(children.get(pid, []))
    return out


@dataclass
class Run:
    """One ``didban ingest`` run: wall seconds; CPU seconds of the whole process tree, of
    its kernel part, and of the loader process alone; minor page faults of the tree; the
    peak RSS of the tree; the command's summary line."""

    wall: float
    cpu: float
    kernel: float
    loader: float
    faults: int
    peak: int
    summary: str


def ingest(files: list[Path], data_dir: Path, jobs: int) -> Run:
    """``didban ingest`` of ``files`` into a new store at ``data_dir``, measured."""
    cmd = [sys.executable, "-m", "didban.cli", "ingest", "--data-dir", str(data_dir)]
    cmd += ["--jobs", str(jobs), *map(str, files)]
    peak = 0
    seen: dict[int, _Usage] = {}  # last usage seen per descendant of the loader
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            tree = _tree(proc.pid)
            peak = max(peak, sum(u.rss for u in tree.values()))
            for pid, usage in tree.items():
                if pid != proc.pid:
                    seen[pid] = usage
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output, _ = proc.communicate()
    wall = time.perf_counter() - t0
    # the loader itself (and the children it waited for)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    done.set()
    sampler.join()
    own_kernel = after.ru_stime - before.ru_stime
    own = after.ru_utime - before.ru_utime + own_kernel
    # its descendants are sampled: each up to 20 ms short
    if proc.returncode != 0:
        raise SystemExit(f"didban ingest failed ({proc.returncode}):\n{output.decode()}")
    return Run(
        wall,
        own + sum(u.cpu for u in seen.values()),
        own_kernel + sum(u.kernel for u in seen.values()),
        own,
        after.ru_minflt - before.ru_minflt + sum(u.faults for u in seen.values()),
        peak,
        output.decode().strip().splitlines()[-1],
    )


def stages(files: list[Path], sample: int) -> None:
    """CPU per measurement of each step, alone, in this process, on ``sample`` lines."""
    from didban.analysis.batch import classify_one
    from didban.analysis.fingerprints import default
    from didban.model.admission import measurement_refusal
    from didban.store import derive, rows
    from didban.store.uid import content_hash

    heap.keep_freed_memory()  # as in ingest's processes
    lines: list[bytes] = []
    with open_file(files[0]) as stream:
        for line in stream:
            lines.append(line)
            if len(lines) >= sample:
                break
    n = len(lines)
    fps = default()
    results: dict[str, Any] = {}

    def timed(label: str, fn: Any, count: int = n) -> Any:
        best = float("inf")
        for _ in range(ROUNDS):  # the best round: the closest to the code's own cost
            t0 = time.process_time()
            out = fn()
            best = min(best, time.process_time() - t0)
        us = best / count * 1e6
        print(f"  {label:58s} {us:7.1f} µs")
        results[label] = us
        return out

    print(
        f"where the time goes (CPU per measurement, one process, {n} lines, "
        f"best of {ROUNDS} rounds):"
    )
    whole = _scan(files[0])  # the floor's stage reads the whole first file
    timed("decompress + scan (the floor)", lambda: _scan(files[0]), whole)
    ms = timed(
        "orjson.loads (the dict every store rule reads)", lambda: [orjson.loads(x) for x in lines]
    )
    timed("model.admission.measurement_refusal", lambda: [measurement_refusal(m) for m in ms])
    hs = timed("content hash (canonical JSON, SHA-512)", lambda: [content_hash(m) for m in ms])
    uids = [derive.uid_for(m, h) for m, h in zip(ms, hs, strict=True)]
    stored = [{**m, "measurement_uid": u} for m, u in zip(ms, uids, strict=True)]
    enc = timed(
        "archive line (the record's bytes, uid kept: derive.stored_line)",
        lambda: [derive.stored_line(x, m, u) for x, m, u in zip(lines, ms, uids, strict=True)],
    )
    timed(
        "archive frame (zstd level 3)",
        lambda: __import__("zstandard").ZstdCompressor(level=3).compress(b"\n".join(enc)),
    )
    cl = timed(
        "classify (analysis.batch.classify_one)",
        lambda: [classify_one(x, fps, True) for x in lines],
    )
    vs = [c[0] for c in cl]
    timed("pack the verdict (msgpack)", lambda: [derive.pack(v) for v in vs])
    mr = timed(
        "measurement_row",
        lambda: [rows.measurement_row(s, u, v) for s, u, v in zip(stored, uids, vs, strict=True)],
    )
    asn = derive.asn_db(derive.Options())
    orows = timed(
        "observation_rows",
        lambda: [rows.observation_rows(s, r, asn) for s, r in zip(stored, mr, strict=True)],
    )
    vr = timed(
        "verdict_row", lambda: [rows.verdict_row(v, u) for v, u in zip(vs, uids, strict=True)]
    )
    import pyarrow as pa

    from didban.store.schema import TABLES

    flat = [r for o in orows for r in o]
    timed(
        "Arrow record batches of the three tables",
        lambda: (
            pa.RecordBatch.from_pylist(mr, schema=TABLES["measurements"]),
            pa.RecordBatch.from_pylist(flat, schema=TABLES["observations"]),
            pa.RecordBatch.from_pylist(vr, schema=TABLES["verdicts"]),
        ),
    )
    t = timed(
        "derive_block (all of the above but the floor, together)",
        lambda: derive.derive_block(list(enumerate(lines, 1))),
    )
    del t
    block = b"".join(lines)[:CHUNK_BYTES]
    per_block = block.count(b"\n")
    us = _pipe_cpu(block) / per_block * 1e6
    label = f"a block ({len(block) >> 20} MiB) to a worker: pickle and pipe, both ends"
    print(f"  {label:58s} {us:7.1f} µs")


def _worker_cpu(data: bytes) -> float:
    """In a worker: its CPU seconds so far (``data`` only travels)."""
    del data
    return time.process_time()


def _pipe_cpu(block: bytes, sends: int = 20) -> float:
    """CPU seconds, this process and a worker's together, of one send of ``block`` to a
    ``ProcessPoolExecutor`` worker as ``didban.files.pool`` sends a block of decompressed
    lines (a fork server's worker that keeps its freed memory, as ingest's do)."""
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=heap.keep_freed_memory) as ex:
        w0 = ex.submit(_worker_cpu, b"").result()
        c0 = time.process_time()
        for _ in range(sends):
            w1 = ex.submit(_worker_cpu, block).result()
        parent = time.process_time() - c0
    return (parent + w1 - w0) / sends


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=60_000, help="measurements")
    ap.add_argument("--files", type=int, default=12, help="hourly files")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=0, help="ingest --jobs (0: one per CPU)")
    ap.add_argument("--sample", type=int, default=2000, help="lines for the breakdown")
    ap.add_argument("--keep", type=Path, help="build the corpus here once and reuse it")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="didban-ingest-bench-"))
    try:
        root = args.keep or work / "ooni"
        files = sorted(root.rglob("*.jsonl.gz")) if args.keep and root.exists() else []
        if not files:
            t0 = time.perf_counter()
            files = build(root, args.n, args.files)
            print(f"built {len(files)} files in {time.perf_counter() - t0:.0f} s")
        size = sum(f.stat().st_size for f in files)
        cpus = usable_cpus()
        print(f"corpus: {len(files)} files, {size / 1e6:.0f} MB gzip; {cpus} usable CPUs")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for r in range(args.rounds):
            n, floor_wall, floor_cpu = floor(files, cpus)
            run = ingest(files, work / f"store-{r}", args.jobs)
            rate, floor_rate = n / run.wall, n / floor_wall
            per, floor_per = run.cpu / n * 1e6, floor_cpu / n * 1e6
            print(
                f"round {r + 1} (load {os.getloadavg()[0]:.1f}): "
                f"floor {floor_rate:,.0f}/s wall, {floor_per:.0f} CPU-µs per measurement; "
                f"ingest {rate:,.0f}/s wall ({run.wall:.1f} s; target >= 15,000), "
                f"{per:.0f} CPU-µs per measurement (the whole tree) = "
                f"{cpus / per * 1e6:,.0f}/s on {cpus} idle CPUs; ingest/floor "
                f"{rate / floor_rate:.2f} wall, {floor_per / per:.2f} CPU (target >= 0.3); "
                f"peak RSS of the tree {run.peak / 2**20:,.0f} MiB (target <= 1,024)"
            )
            print(
                f"  ({run.summary}; CPU per measurement: the loader process "
                f"{run.loader / n * 1e6:.0f} µs (decompression, runs, archive, index, Parquet), "
                f"its workers {(run.cpu - run.loader) / n * 1e6:.0f} µs; in the kernel "
                f"{run.kernel / n * 1e6:.0f} µs; {run.faults / n:.1f} minor page faults)"
            )
            shutil.rmtree(work / f"store-{r}", ignore_errors=True)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        stages(files, args.sample)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
