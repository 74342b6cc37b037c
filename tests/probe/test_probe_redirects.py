"""Every redirect hop recorded the way OONI Web Connectivity v0.5 records it, against loopback
peers: each hop's lookup, connects, handshakes and request tagged ``depth=N``; no
``requests`` entry for a hop that failed before HTTP, whose failure is
``http_experiment_failure``; and the verdict reads those records."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from probe_peers import Loopback, free_port

from didban.analysis import classify
from didban.model.validate import problems
from didban.probe.config import ProbeConfig
from didban.probe.envelope import ProbeIdentity
from didban.probe.lists import ListEntry
from didban.probe.webconnectivity import WebConnectivity


def _config(lb: Loopback) -> ProbeConfig:
    return lb.web_config(lb.dns_plain_port)


async def _measure(lb: Loopback, path: str) -> dict[str, Any]:
    exp = WebConnectivity(_config(lb), ProbeIdentity("IR", "AS197207", "lab"))
    try:
        m = msgspec.to_builtins(await exp.measure(ListEntry(lb.url(path)), 30))
    finally:
        exp.close()
    assert problems(m) == []
    return m  # type: ignore[no-any-return]


def _at(records: list[dict[str, Any]], depth: int) -> list[dict[str, Any]]:
    return [r for r in records if f"depth={depth}" in (r.get("tags") or [])]


@pytest.fixture
def eof_port() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that reads the ClientHello and closes (a FIN: EOF)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(16384)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(2)
        srv.close()


async def test_every_hop_of_a_chain_carries_its_depth(loopback: Loopback) -> None:
    tk = (await _measure(loopback, "/old"))["test_keys"]
    # newest first: the page at hop 1, the redirect at hop 0
    assert [r["response"]["code"] for r in tk["requests"]] == [200, 302]
    assert "depth=1" in tk["requests"][0]["tags"] and "depth=0" in tk["requests"][1]["tags"]
    lookups = _at(tk["queries"], 1)
    assert [(q["engine"], q["hostname"]) for q in lookups] == [("getaddrinfo", "localhost")]
    assert _at(tk["tcp_connect"], 1) and _at(tk["tls_handshakes"], 1)
    assert all("tcptls_experiment" in h["tags"] for h in _at(tk["tls_handshakes"], 1))
    assert _at(tk["network_events"], 1)
    assert tk["http_experiment_failure"] is None
    assert (
        classify(
            {"test_name": "web_connectivity", "input": loopback.url("/old"), "test_keys": tk}
        ).state
        == "ok"
    )


async def test_a_hop_refused_at_tcp_leaves_records_and_no_request(loopback: Loopback) -> None:
    closed = free_port()
    m = await _measure(loopback, f"/to/{closed}")
    tk = m["test_keys"]
    assert [(r["response"]["code"], r["tags"]) for r in tk["requests"]] == [
        (302, ["classic", "depth=0", "fetch_body=true"])
    ]
    hop = _at(tk["tcp_connect"], 1)
    assert hop and {c["port"] for c in hop} == {closed}
    assert {c["status"]["failure"] for c in hop} == {"connection_refused"}
    assert [q["hostname"] for q in _at(tk["queries"], 1)] == ["localhost"]
    assert _at(tk["tls_handshakes"], 1) == []
    assert tk["http_experiment_failure"] == "connection_refused"
    # the control followed the redirect and was refused too: down, read from hop 1
    v = classify(m)
    assert (v.state, v.layer, v.rule_id) == ("down", "tcp", "wc.hop.ctrl_failing")


async def test_a_hop_closed_during_tls_leaves_its_handshake(
    loopback: Loopback, eof_port: int
) -> None:
    m = await _measure(loopback, f"/to/{eof_port}")
    tk = m["test_keys"]
    assert [r["response"]["code"] for r in tk["requests"]] == [302]
    handshakes = _at(tk["tls_handshakes"], 1)
    assert handshakes and {h["failure"] for h in handshakes} == {"eof_error"}
    assert all(h["server_name"] == "localhost" for h in handshakes)
    assert tk["http_experiment_failure"] == "eof_error"
    v = classify(m)
    assert (v.state, v.layer, v.rule_id) == ("down", "tls", "wc.hop.ctrl_failing")
