"""``didban serve`` flag errors, the one-writer rule, and OONI fixtures through the API."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from didban.api.app import create_app
from didban.cli import app
from didban.store.ingest import ingest
from didban.store.store import Store


def test_serve_refuses_a_bad_listen_address(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["serve", "--listen", "localhost", "--data-dir", str(tmp_path)])
    assert r.exit_code == 2
    assert "--listen must be HOST:PORT" in r.output


def test_serve_refuses_bad_flags_and_a_busy_port_before_announcing(tmp_path: Path) -> None:
    d = str(tmp_path / "d")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, reason in (
            (["--max-body", "0"], "--max-body must be a positive number of bytes"),
            (["--listen", "127.0.0.1:0"], "the port must be 1-65535"),
            (["--listen", f"127.0.0.1:{port}"], "cannot listen on 127.0.0.1:"),
        ):
            r = CliRunner().invoke(app, ["serve", *args, "--data-dir", d])
            assert r.exit_code == 2 and reason in r.output
            assert "didban API on" not in r.output


def test_busy_data_directory_is_refused(tmp_path: Path) -> None:
    s = Store(tmp_path / "d", classifier=None)
    try:
        r = CliRunner().invoke(app, ["store", "info", "--data-dir", str(tmp_path / "d")])
        assert r.exit_code == 1
        assert "in use by another didban process" in r.output
    finally:
        s.close()


def test_ooni_fixtures_classified_and_served(ooni_fixtures: Path, tmp_path: Path) -> None:
    s = Store(tmp_path / "d")  # the real didban.analysis classifier
    try:
        ingest(s, [ooni_fixtures / "backend_fastpath"])
        with TestClient(create_app(s)) as c:
            services = c.get(
                "/api/v1/services/IR", params={"since": "2022-08-01", "until": "2022-09-01"}
            ).json()["services"]
            fb = next(x for x in services if x["service"] == "facebook")
            assert fb["state"] == "blocked" and fb["layer"] == "dns"
            assert fb["witness"]["input"] == "https://www.facebook.com/"
            uid = fb["witness"]["measurement_uid"]
            one = c.get(f"/api/v1/measurement/{uid}").json()
            assert one["verdict"]["confirmed"] is True and one["evidence"]
            agg = c.get(
                "/api/v1/aggregation",
                params={"probe_cc": "IR", "since": "2020-01-01", "until": "2023-01-01"},
            ).json()["result"]
            assert agg["measurement_count"] == 3
            assert agg["confirmed_count"] >= 1
    finally:
        s.close()


def test_serve_check_skips_addresses_this_machine_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "localhost" may resolve to ::1 first on a machine without IPv6: not a reason to refuse
    import errno

    real = socket.socket.bind

    def bind(self: socket.socket, addr: object) -> None:
        if self.family == socket.AF_INET6:
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        real(self, addr)  # type: ignore[arg-type]

    infos = [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0)),
    ]
    monkeypatch.setattr(socket.socket, "bind", bind)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: infos)
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: None)  # checked; do not serve
    r = CliRunner().invoke(
        app, ["serve", "--listen", "localhost:8080", "--data-dir", str(tmp_path)]
    )
    assert r.exit_code == 0, r.output
    assert "didban API on http://localhost:8080/" in r.output
