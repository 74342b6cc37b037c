"""The IM experiments against real servers on loopback: each is given its catalog row with
loopback endpoints (the catalog is data: the lab and these tests swap the addresses, the
experiment is the same), and its OONI keys must say what a user of the app would notice."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trustme
from probe_peers import Handler, Loopback, free_port

import ooni_models
from didban.data.apps import App, Endpoint
from didban.model.labinfo import AsnRow
from didban.model.validate import problems
from didban.net import dns
from didban.probe.apps.facebook_messenger import FacebookMessenger
from didban.probe.apps.signal import Signal
from didban.probe.apps.stunreachability import StunReachability
from didban.probe.apps.telegram import Telegram
from didban.probe.apps.whatsapp import WhatsApp
from didban.probe.config import ProbeConfig
from didban.probe.envelope import ProbeIdentity
from didban.probe.lists import ListEntry
from stun_peer import coturn


def _serve(ctx: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    if ctx is not None:
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, int(httpd.server_address[1])


@pytest.fixture(scope="module")
def plain_http() -> Iterator[int]:
    """A plain HTTP server on loopback (a Telegram data centre speaks HTTP)."""
    httpd, port = _serve()
    yield port
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    """A TCP port that accepts (WhatsApp's 5222, Messenger's 443)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield int(s.getsockname()[1])


def _cfg(loopback: Loopback, **kw: Any) -> ProbeConfig:
    return ProbeConfig(
        ca_file=loopback.ca_file,
        control_url=loopback.control_url,
        tcp_timeout=2.0,
        tls_timeout=2.0,
        http_timeout=3.0,
        **kw,
    )


def _resolver(loopback: Loopback) -> dns.Transport:
    return dns.UDP(f"127.0.0.1:{loopback.dns_plain_port}", timeout=2.0, wait_duplicates=0)


def _ep(eid: str, kind: str, **kw: Any) -> Endpoint:
    return Endpoint(id=eid, kind=kind, source="test", **kw)


async def _measure(exp: Any, url: str) -> dict[str, Any]:
    m = await exp.measure(ListEntry(url=url), 20.0)
    out: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(m))
    assert problems(out) == []  # OONI's base format (df-000)
    ooni_models.check(out)  # and OONI's data model of the test loads it
    return out


async def test_telegram_answering_data_centre_clears_both_blocking_keys(
    loopback: Loopback, plain_http: int
) -> None:
    app = App(
        id="telegram", name="Telegram", source="test",
        endpoints=(
            _ep("dc1", "datacenter", address="127.0.0.1", ports=(plain_http, free_port())),
            _ep("web", "web", url=loopback.url("/")),
        ),
    )  # fmt: skip
    m = await _measure(Telegram(_cfg(loopback), ProbeIdentity(), app=app), "telegram")
    tk = m["test_keys"]
    assert (m["test_name"], m["input"]) == ("telegram", None)
    assert (tk["telegram_tcp_blocking"], tk["telegram_http_blocking"]) == (False, False)
    assert (tk["telegram_web_status"], tk["telegram_web_failure"]) == ("ok", None)
    posts = [r for r in tk["requests"] if r["request"]["method"] == "POST"]
    assert {r["failure"] for r in posts} == {None, "connection_refused"}
    assert all("x_didban_endpoint=dc1" in r["tags"] for r in posts)


async def test_telegram_refused_everywhere_is_tcp_blocking(loopback: Loopback) -> None:
    app = App(
        id="telegram", name="Telegram", source="test",
        endpoints=(
            _ep("dc1", "datacenter", address="127.0.0.1", ports=(free_port(), free_port())),
            _ep("web", "web", url=f"https://localhost:{free_port()}/"),
        ),
    )  # fmt: skip
    tk = (await _measure(Telegram(_cfg(loopback), ProbeIdentity(), app=app), "telegram"))[
        "test_keys"
    ]
    assert (tk["telegram_tcp_blocking"], tk["telegram_http_blocking"]) == (True, True)
    assert (tk["telegram_web_status"], tk["telegram_web_failure"]) == (
        "blocked",
        "connection_refused",
    )


@pytest.fixture(scope="module")
def signal_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """An HTTPS server whose certificate comes from its own CA (a "Signal CA")."""
    own = trustme.CA(organization_name="Signal Messenger (test)")
    pem = tmp_path_factory.mktemp("signal") / "signal-ca.pem"
    own.cert_pem.write_to_path(str(pem))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    own.issue_cert("localhost").configure_cert(ctx)
    httpd, port = _serve(ctx)
    yield port, str(pem)
    httpd.shutdown()
    httpd.server_close()


def _signal_app(port: int) -> App:
    return App(
        id="signal", name="Signal", source="test", ca=(),
        endpoints=(_ep("chat", "backend", url=f"https://localhost:{port}/"),),
    )  # fmt: skip


async def test_signal_verifies_against_its_pinned_ca(
    loopback: Loopback, signal_site: tuple[int, str]
) -> None:
    port, pem = signal_site
    cfg = _cfg(loopback, pinned_cas={"signal": [pem]})
    exp = Signal(cfg, ProbeIdentity(), app=_signal_app(port))
    try:
        tk = (await _measure(exp, "signal"))["test_keys"]
    finally:
        exp.close()
    assert (tk["signal_backend_status"], tk["signal_backend_failure"]) == ("ok", None)
    assert tk["tls_handshakes"][0]["failure"] is None


async def test_signal_without_its_ca_fails_verification(
    loopback: Loopback, signal_site: tuple[int, str]
) -> None:
    port, _ = signal_site
    tk = (await _measure(Signal(_cfg(loopback), ProbeIdentity(), app=_signal_app(port)), "signal"))[
        "test_keys"
    ]
    assert (tk["signal_backend_status"], tk["signal_backend_failure"]) == (
        "blocked",
        "ssl_unknown_authority",
    )


async def test_whatsapp_endpoint_with_one_open_port_is_reachable(
    loopback: Loopback, listener: int
) -> None:
    closed = free_port()
    app = App(
        id="whatsapp", name="WhatsApp", source="test",
        endpoints=(
            _ep("e1", "endpoint", host="e1.whatsapp.test", ports=(closed, listener)),
            _ep("e2", "endpoint", host="e2.whatsapp.test", ports=(closed, free_port())),
            _ep("registration", "registration", url=loopback.url("/v2/register")),
            _ep("web", "web", url=f"https://localhost:{closed}/"),
        ),
    )  # fmt: skip
    exp = WhatsApp(_cfg(loopback), ProbeIdentity(), resolver=_resolver(loopback), app=app)
    tk = (await _measure(exp, "whatsapp"))["test_keys"]
    assert tk["whatsapp_endpoints_status"] == "ok"
    assert tk["whatsapp_endpoints_blocked"] == ["e2.whatsapp.test"]
    assert tk["whatsapp_endpoints_dns_inconsistent"] == []
    # the registration server answered 404: its status is not judged, only the exchange
    assert (tk["registration_server_status"], tk["registration_server_failure"]) == ("ok", None)
    assert (tk["whatsapp_web_status"], tk["whatsapp_web_failure"]) == (
        "blocked",
        "connection_refused",
    )


def _messenger(port: int) -> App:
    return App(
        id="facebook_messenger", name="Messenger", source="test", asn=32934,
        endpoints=(
            _ep("stun", "dns", host="stun.fbsbx.test"),
            _ep("b_api", "endpoint", host="b-api.facebook.test", ports=(port,)),
        ),
    )  # fmt: skip


async def test_messenger_inside_facebook_as_is_consistent(
    loopback: Loopback, listener: int
) -> None:
    cfg = _cfg(loopback, asn_rows=[AsnRow("127.0.0.0/8", 32934, "US", "Facebook (test)")])
    exp = FacebookMessenger(
        cfg, ProbeIdentity(), resolver=_resolver(loopback), app=_messenger(listener)
    )
    tk = (await _measure(exp, "facebook_messenger"))["test_keys"]
    assert tk["facebook_b_api_dns_consistent"] is True
    assert tk["facebook_b_api_reachable"] is True
    assert tk["facebook_stun_dns_consistent"] is True
    assert tk["facebook_stun_reachable"] is None
    assert (tk["facebook_dns_blocking"], tk["facebook_tcp_blocking"]) == (False, False)
    assert {a["asn"] for q in tk["queries"] for a in q["answers"]} == {32934}


async def test_messenger_outside_facebook_as_is_dns_blocking(
    loopback: Loopback, listener: int
) -> None:
    cfg = _cfg(loopback, asn_rows=[AsnRow("127.0.0.0/8", 64500, "NL", "elsewhere")])
    exp = FacebookMessenger(
        cfg, ProbeIdentity(), resolver=_resolver(loopback), app=_messenger(listener)
    )
    tk = (await _measure(exp, "facebook_messenger"))["test_keys"]
    assert tk["facebook_b_api_dns_consistent"] is False
    assert tk["facebook_b_api_reachable"] is None  # inconsistent: not connected to
    assert (tk["facebook_dns_blocking"], tk["facebook_tcp_blocking"]) == (True, False)
    assert tk["tcp_connect"] == []


async def test_stun_answered_by_server_and_control(loopback: Loopback, tmp_path: Path) -> None:
    with coturn(tmp_path) as port:
        exp = StunReachability(_cfg(loopback), ProbeIdentity())
        m = await _measure(exp, f"stun://127.0.0.1:{port}")
    tk = m["test_keys"]
    assert (m["test_name"], m["input"]) == ("stunreachability", f"stun://127.0.0.1:{port}")
    assert (tk["endpoint"], tk["failure"]) == (f"127.0.0.1:{port}", None)
    assert tk["x_didban_response_type"] == "binding_success"
    assert tk["x_didban_control"]["failure"] is None
    assert tk["x_didban_control"]["response_type"] == "binding_success"
    assert [e["operation"] for e in tk["network_events"]][-3:] == [
        "connect",
        "write_to",
        "read_from",
    ]


async def test_stun_closed_port_fails_for_both(loopback: Loopback) -> None:
    port = free_port()
    tk = (
        await _measure(
            StunReachability(_cfg(loopback), ProbeIdentity()), f"stun://127.0.0.1:{port}"
        )
    )["test_keys"]
    assert tk["failure"] == "connection_refused"
    assert tk["x_didban_control"]["failure"] == "connection_refused"
