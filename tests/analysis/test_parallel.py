"""``classify_paths(..., jobs=N)`` and ``didban analyze --jobs``: the same verdicts, errors and
order as one process, over ranges of one file, compressed files and unreadable ones."""

from __future__ import annotations

import gzip
import multiprocessing
import threading
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import msgspec
import pytest
from analysis_builders import ctrl, q, req, tcp, web
from typer.testing import CliRunner

from didban.analysis import batch
from didban.cli import app
from didban.files import pool, tasks


def _m(i: int) -> dict[str, Any]:
    host = f"site{i}.example.org"
    blocked = i % 3 == 0
    m = web(
        f"http://{host}/",
        queries=[q(host, ["10.10.34.35" if blocked else "192.0.2.7"])],
        tcp_connect=[tcp("192.0.2.7", 80)],
        requests=[req(f"http://{host}/")],
        control=ctrl(["192.0.2.7"]),
    )
    m["report_id"] = f"20261204T000000Z_webconnectivity_IR_{i // 7}"  # runs of 7
    return m


def _lines(n: int) -> list[bytes]:
    out: list[bytes] = []
    for i in range(n):
        out.append(msgspec.json.encode(_m(i)))
        if i % 10 == 4:
            out.append(b"{broken")
        if i % 10 == 6:
            out.append(b"   ")  # blank: skipped, still counted as a line
    return out


def _run(paths: list[Path], jobs: int) -> tuple[list[tuple[str, int, str, str]], list[str]]:
    errors: list[str] = []
    counts = pool.Counts()
    got = [
        (rec.path.name, rec.line, v.rule_id, msgspec.json.encode(v).decode())
        for rec, v in batch.classify_paths(paths, errors.append, counts, jobs=jobs)
    ]
    errors.append(f"counts {counts}")
    return got, errors


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    monkeypatch.setattr(tasks, "CHUNK_BYTES", 4096)  # many ranges, cut inside lines
    big = tmp_path / "a.jsonl"
    big.write_bytes(b"\n".join(_lines(150)))  # no newline after the last line
    gz = tmp_path / "b.jsonl.gz"
    gz.write_bytes(gzip.compress(b"\n".join(_lines(30)) + b"\n"))
    bad = tmp_path / "c.jsonl.gz"
    bad.write_bytes(gzip.compress(b"\n".join(_lines(20)) + b"\n")[:-40])  # truncated
    one = tmp_path / "d.json"
    one.write_bytes(msgspec.json.format(msgspec.json.encode(_m(1)), indent=2))
    return [tmp_path]


def test_parallel_gives_what_one_process_gives(corpus: list[Path]) -> None:
    serial, serial_errors = _run(corpus, 1)
    par, par_errors = _run(corpus, 2)
    assert par == serial
    assert par_errors == serial_errors
    # the corpus really exercises what it should
    # (the truncated c.jsonl.gz gives the records before the damage, then its error)
    assert {name for name, *_ in serial} == {"a.jsonl", "b.jsonl.gz", "c.jsonl.gz", "d.json"}
    assert {r for _, _, r, _ in serial} == {"wc.dns.fingerprint", "wc.http.match"}
    assert any(": invalid JSON" in e and "a.jsonl:" in e for e in serial_errors)
    assert any("c.jsonl.gz: cannot read" in e for e in serial_errors)
    # line numbers count blank and broken lines, across ranges
    lines_a = [line for name, line, *_ in serial if name == "a.jsonl"]
    assert len(lines_a) == 150 and lines_a[-1] == len(_lines(150))


def test_analyze_jobs_flag(
    corpus: list[Path], tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "PARALLEL_MIN_BYTES", 0)
    runner = CliRunner()
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path_factory.mktemp("out") / "v.jsonl"  # not inside the corpus
        r = runner.invoke(app, ["analyze", str(corpus[0]), "-q", "-j", jobs, "-o", str(out)])
        assert r.exit_code == 0, r.output
        outs.append((out.read_bytes(), r.stderr))
    assert outs[0] == outs[1]
    r = runner.invoke(app, ["analyze", str(corpus[0]), "--jobs", "-1"])
    assert r.exit_code == 2 and "--jobs must be 0" in r.stderr


def test_a_process_with_threads_starts_workers_afresh(corpus: list[Path]) -> None:
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert pool._context().get_start_method() != "fork"
        par, par_errors = _run(corpus, 2)
    finally:
        stop.set()
        t.join()
    serial, serial_errors = _run(corpus, 1)
    assert (par, par_errors) == (serial, serial_errors)


def test_a_file_given_twice_and_odd_line_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "CHUNK_BYTES", 2048)
    d = tmp_path / "in"
    d.mkdir()
    crlf = d / "crlf.jsonl"
    crlf.write_bytes(b"\r\n".join(_lines(40)) + b"\r\n")
    long = d / "long.jsonl"
    huge = _m(99)
    huge["test_keys"]["requests"][0]["response"]["body"] = "x" * 10_000  # > CHUNK_BYTES
    long.write_bytes(b"\n".join([*_lines(5), msgspec.json.encode(huge), *_lines(5)]))
    empty = d / "empty.jsonl"
    empty.write_bytes(b"")
    paths = [d, crlf, long]  # the directory, then two of its files again
    serial, serial_errors = _run(paths, 1)
    par, par_errors = _run(paths, 2)
    assert (par, par_errors) == (serial, serial_errors)
    # the second pass over crlf.jsonl numbers its lines from 1 again
    crlf_lines = [line for name, line, *_ in serial if name == "crlf.jsonl"]
    assert len(crlf_lines) == 80 and crlf_lines[:3] == crlf_lines[40:43]


def test_workers_really_classify(corpus: list[Path]) -> None:
    it = batch.classify_paths(corpus, lambda e: None, jobs=2)
    next(it)
    assert multiprocessing.active_children(), "no worker process was started"
    it.close()  # a consumer that stops early: the pool shuts down
    assert not multiprocessing.active_children()


def test_analyze_says_so_when_a_worker_dies(
    corpus: list[Path], tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> Any:
        yield from ()
        raise BrokenProcessPool("a child process terminated abruptly")

    monkeypatch.setattr(batch, "classify_paths", broken)
    out = tmp_path_factory.mktemp("out") / "v.jsonl"
    r = CliRunner().invoke(app, ["analyze", str(corpus[0]), "-o", str(out)])
    assert r.exit_code == 3
    assert "a worker process died" in r.stderr and "--jobs 1" in r.stderr
    assert not out.exists() and not list(out.parent.iterdir())
