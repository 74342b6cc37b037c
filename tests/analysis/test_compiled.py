"""The compiled rule cascade: loaded only while it matches the sources, and it gives the
verdicts the Python source gives, byte for byte."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from analysis_builders import IR_BLOCKPAGE, ctrl, q, req, tcp, tls, web

from didban.analysis import compiled

SUFFIX = compiled._ext_suffix()
PURE_RUN = bool(os.environ.get(compiled.ENV_PURE))  # this test run forces Python


def _fake_build(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A source tree with one module and a "build" of it whose stamp matches."""
    root = tmp_path / "src"
    source = root / "didban" / "analysis" / "web.py"
    source.parent.mkdir(parents=True)
    source.write_text("X = 1\n")
    target = tmp_path / "_compiled"
    target.mkdir()
    for name in (*compiled.MODULES, compiled.GROUP.rpartition(".")[2] + "__mypyc"):
        (target / f"{name}{SUFFIX}").write_bytes(b"")
    stamp = {
        "ext_suffix": SUFFIX,
        "sources": {"didban/analysis/web.py": hashlib.sha256(b"X = 1\n").hexdigest()},
    }
    (target / compiled.STAMP).write_text(json.dumps(stamp))
    return root, source, target


@pytest.fixture(autouse=True)
def _keep_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "_state", compiled._state)
    monkeypatch.delenv(compiled.ENV_PURE, raising=False)


def test_a_build_that_matches_the_sources_comes_first_on_the_search_path(tmp_path: Path) -> None:
    root, _, target = _fake_build(tmp_path)
    assert compiled.search_path(["pkg"], target, root) == [str(target), "pkg"]
    assert compiled.mode().startswith("compiled (mypyc: classify, web")


def test_an_edited_source_runs_as_python_at_once(tmp_path: Path) -> None:
    root, source, target = _fake_build(tmp_path)
    source.write_text("X = 2\n")
    assert compiled.search_path(["pkg"], target, root) == ["pkg"]
    assert compiled.mode() == (
        "pure Python (didban/analysis/web.py changed since the compiled build: "
        "make deps rebuilds it)"
    )


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        ("no_stamp", "pure Python (not built"),
        ("bad_stamp", "pure Python (the compiled build's stamp is unreadable"),
        ("other_python", "pure Python (built for another interpreter, .cpython-399"),
        ("missing_module", "pure Python (the compiled build is incomplete"),
        ("deleted_source", "pure Python (didban/analysis/web.py changed"),
        ("env", f"pure Python ({compiled.ENV_PURE} is set)"),
        ("bad_shape", "pure Python (the compiled build's stamp is unreadable"),
    ],
)
def test_a_damaged_or_foreign_build_is_not_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str, why: str
) -> None:
    root, source, target = _fake_build(tmp_path)
    stamp = target / compiled.STAMP
    if damage == "no_stamp":
        stamp.unlink()
        monkeypatch.setattr(compiled, "_state", "pure Python (not built")
    elif damage == "bad_stamp":
        stamp.write_text("{not json")
    elif damage == "other_python":
        stamp.write_text(
            json.dumps({**json.loads(stamp.read_text()), "ext_suffix": ".cpython-399"})
        )
    elif damage == "missing_module":
        (target / f"web{SUFFIX}").unlink()
    elif damage == "deleted_source":
        source.unlink()
    elif damage == "bad_shape":
        stamp.write_text(json.dumps({"ext_suffix": SUFFIX, "sources": []}))
    else:
        monkeypatch.setenv(compiled.ENV_PURE, "1")
    assert compiled.search_path(["pkg"], target, root) == ["pkg"]
    assert compiled.mode().startswith(why)


def test_pure_python_is_forced_by_a_true_value_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _, target = _fake_build(tmp_path)
    monkeypatch.setenv(compiled.ENV_PURE, "0")
    assert compiled.search_path(["pkg"], target, root) == [str(target), "pkg"]


def test_a_build_that_does_not_load_leaves_the_package_in_python(tmp_path: Path) -> None:
    """A build whose stamp matches but whose shared library is damaged: importing the
    package (and so ``make deps``, which rebuilds through it) still works, as Python."""
    _require_build()
    src = tmp_path / "src"
    shutil.copytree(compiled.SRC_ROOT / "didban", src / "didban", ignore=_no_caches)
    group = src / "didban" / "analysis" / "_compiled" / f"rules_c__mypyc{SUFFIX}"
    group.write_bytes(b"not a shared library")
    code = (
        "import didban.analysis.web as w, didban.analysis.compiled as c; "
        "print(c.mode()); print(w.__file__)"
    )
    env = _env_without_pure()
    env["PYTHONPATH"] = str(src)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    mode, web_file = done.stdout.splitlines()
    assert mode.startswith("pure Python (the compiled build does not load: ")
    assert web_file == str(src / "didban" / "analysis" / "web.py")


def _env_without_pure() -> dict[str, str]:
    """This process's environment for a child, without a forced pure-Python mode."""
    return {k: v for k, v in os.environ.items() if k != compiled.ENV_PURE}


def _no_caches(_: str, names: list[str]) -> list[str]:
    return [n for n in names if n in ("__pycache__", "static")]


def test_the_stamp_covers_every_didban_module_the_compiled_ones_import() -> None:
    files = {str(p.relative_to(compiled.SRC_ROOT)) for p in compiled.dependencies()}
    for module in compiled.MODULES:
        assert f"didban/analysis/{module}.py" in files
    # their types are compiled in: the Structs they read and the verdict they build
    assert {"didban/analysis/records.py", "didban/model/verdict.py"} <= files
    assert "didban/probe/web_connectivity.py" not in files


def _require_build() -> None:
    if not compiled.up_to_date():
        why = compiled._missing_tools() or "make deps has not built it from these sources"
        pytest.skip(f"the rules are not compiled on this machine: {why}")


def test_a_current_build_is_the_one_running() -> None:
    if PURE_RUN:
        pytest.skip(f"{compiled.ENV_PURE} is set: this run tests the rules as Python")
    _require_build()
    import didban.analysis.web as web_module

    assert Path(web_module.__file__ or "").parent == compiled.TARGET
    assert compiled.mode().startswith("compiled")


HOST = "www.example.com"
IP = "93.184.216.34"


def _corpus() -> list[dict[str, Any]]:
    """Every kind of web measurement the rules tell apart, then each with a subtree broken."""
    https, http = f"https://{HOST}/", f"http://{HOST}/"
    ok_ctrl = ctrl([IP], tcp={f"{IP}:443": True, f"{IP}:80": True}, tls={f"{IP}:443": True})
    kinds = [
        web(
            https,
            queries=[q(HOST, [IP])],
            tcp_connect=[tcp(IP, 443)],
            tls_handshakes=[tls(f"{IP}:443", HOST)],
            requests=[req(https)],
            control=ok_ctrl,
        ),
        web(
            http,
            queries=[q(HOST, [IP])],
            tcp_connect=[tcp(IP, 80)],
            requests=[req(http)],
            control=ok_ctrl,
        ),
        web(
            http,
            queries=[q(HOST, ["10.10.34.36"])],
            tcp_connect=[tcp("10.10.34.36", 80)],
            requests=[req(http, code=403, body=IR_BLOCKPAGE)],
            control=ok_ctrl,
        ),
        web(
            https,
            queries=[q(HOST, [IP])],
            tcp_connect=[tcp(IP, 443)],
            tls_handshakes=[tls(f"{IP}:443", HOST, "connection_reset")],
            requests=[req(https, failure="connection_reset")],
            control=ok_ctrl,
        ),
        web(
            https,
            queries=[q(HOST, [IP])],
            tcp_connect=[tcp(IP, 443, "generic_timeout_error")],
            requests=[req(https, failure="generic_timeout_error")],
            control=ok_ctrl,
        ),
        web(
            https,
            queries=[q(HOST, [], failure="dns_nxdomain_error")],
            requests=[req(https, failure="dns_nxdomain_error")],
            control=ok_ctrl,
        ),
        web(
            https,
            queries=[q(HOST, ["198.51.100.7"])],
            tcp_connect=[tcp("198.51.100.7", 443)],
            tls_handshakes=[tls("198.51.100.7:443", HOST, "ssl_unknown_authority")],
            requests=[req(https, failure="ssl_unknown_authority")],
            control=ok_ctrl,
        ),
        web(
            http,
            queries=[q(HOST, ["10.0.0.1"])],
            tcp_connect=[tcp("10.0.0.1", 80)],
            requests=[req(http, body="<html><title>Other</title></html>")],
            control=ok_ctrl,
        ),
        web(
            https,
            queries=[q(HOST, [IP])],
            dups=[q(HOST, ["10.10.34.35"])],
            tcp_connect=[tcp(IP, 443)],
            tls_handshakes=[tls(f"{IP}:443", HOST)],
            requests=[req(https)],
            control=ok_ctrl,
        ),
        web(
            https,
            queries=[q(HOST, [IP])],
            requests=[req(https, failure="connection_reset")],
            control=None,
            control_failure="http_request_failed",
        ),
    ]
    junk: list[Any] = [None, 7, "x", [], {}, [None], {"a": [1, {"b": None}]}, -1, 2**70]
    broken: list[dict[str, Any]] = []
    for base in kinds:
        for path in (
            ("test_keys", "queries", 0, "answers"),
            ("test_keys", "requests", 0, "response"),
            ("test_keys", "control", "http_request"),
            ("test_keys", "tcp_connect", 0, "status"),
            ("input",),
        ):
            for value in junk:
                m = copy.deepcopy(base)
                cur: Any = m
                try:
                    for key in path[:-1]:
                        cur = cur[key]
                    cur[path[-1]] = value
                except (IndexError, KeyError, TypeError):
                    continue
                broken.append(m)
    return kinds + broken


def _analyze(inputs: list[Path], out: Path, pure: bool) -> tuple[bytes, str]:
    env = _env_without_pure()
    if pure:
        env[compiled.ENV_PURE] = "1"
    code = (
        "import sys; from didban.cli import app; "
        "sys.argv = ['didban', 'analyze', *sys.argv[1:]]; app()"
    )
    args = [*map(str, inputs), "--output", str(out), "--quiet", "--jobs", "1"]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return out.read_bytes(), done.stderr


def test_compiled_and_python_rules_give_the_same_verdicts(tmp_path: Path) -> None:
    """The whole corpus (every kind, each also with junk in place of a subtree, and OONI's
    fixtures when present) through ``didban analyze`` twice: the outputs are identical."""
    _require_build()
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(b"".join(msgspec.json.encode(m) + b"\n" for m in _corpus()))
    inputs = [corpus]
    fixtures = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "ooni"
    if (fixtures / "backend_fastpath").is_dir():
        inputs.append(fixtures / "backend_fastpath")
    fast, fast_err = _analyze(inputs, tmp_path / "compiled.jsonl", pure=False)
    slow, slow_err = _analyze(inputs, tmp_path / "pure.jsonl", pure=True)
    assert fast.count(b"\n") >= len(_corpus())
    assert fast == slow
    assert fast_err == slow_err
