"""Which directories the store commands accept: only ``ingest`` and ``serve`` create stores;
``store info|rebuild|compact`` refuse a directory that holds none and write nothing there."""

from __future__ import annotations

import socket
from pathlib import Path

import orjson
import pytest
from store_helpers import measurement
from typer.testing import CliRunner

from didban.cli import app
from didban.store.store import NotAStore, Store, is_store


def listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@pytest.mark.parametrize("command", [["info"], ["rebuild"], ["compact"]])
def test_store_commands_refuse_a_directory_that_is_not_a_store(
    tmp_path: Path, command: list[str]
) -> None:
    """Once: index.sqlite and writer.lock written into any directory, '0 measurements'."""
    for d, files in ((tmp_path / "empty", []), (tmp_path / "home", ["notes.txt"])):
        d.mkdir()
        for name in files:
            (d / name).write_text("mine")
        before = listing(d)
        r = CliRunner().invoke(app, ["store", *command, "--data-dir", str(d)])
        assert r.exit_code == 2, r.output
        assert f"{d} is not a didban store" in r.output and "Traceback" not in r.output
        assert "0 measurements" not in r.output and "archived" not in r.output
        assert listing(d) == before  # nothing written


def test_ingest_creates_a_store_in_a_new_or_empty_directory_only(tmp_path: Path) -> None:
    f = tmp_path / "m.jsonl"
    f.write_bytes(orjson.dumps(measurement(1)) + b"\n")
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    for d in (tmp_path / "new", empty):
        r = runner.invoke(app, ["ingest", str(f), "--data-dir", str(d)])
        assert r.exit_code == 0, r.output
        assert is_store(d)
        r = runner.invoke(app, ["store", "info", "--data-dir", str(d)])
        assert r.exit_code == 0 and "archived measurements: 1" in r.output
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for args in (["ingest", str(f)], ["serve", "--listen", f"127.0.0.1:{port}"]):
        r = runner.invoke(app, [*args, "--data-dir", str(home)])
        assert r.exit_code == 2, r.output
        assert "holds other files and no didban store" in r.output
        assert listing(home) == ["notes.txt"]


def test_a_store_without_its_index_is_still_a_store(tmp_path: Path) -> None:
    d = tmp_path / "d"
    with Store(d, classifier=None) as s:
        s.add_batch([measurement(1)])
    (d / "index.sqlite").unlink()
    r = CliRunner().invoke(app, ["store", "rebuild", "--data-dir", str(d)])
    assert r.exit_code == 0 and "1 measurements" in r.output, r.output
    with pytest.raises(NotAStore):
        Store(tmp_path / "other", create=False)
    assert not (tmp_path / "other").exists()
