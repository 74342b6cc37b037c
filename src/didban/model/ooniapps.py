"""Test keys of OONI's app experiments, as didban writes them (OONI data format 0.2.0).

The IM tests (telegram ts-020, signal ts-029, whatsapp ts-018, facebook_messenger ts-019)
carry OONI's ``urlgetter`` keys (``agent``, ``failed_operation``, ``failure`` and the
df-001/002/005/006/008 lists) plus their own summary keys, with OONI's names, types and
initial values (probe-cli ``internal/experiment/<name>``; ooni/data
``oonidata.models.nettests``). ``stunreachability`` (ts-025) and ``urlgetter`` (ts-027,
didban's HTTP/3 test) follow the same specs. didban's additions are ``x_didban_*`` keys.
"""

from __future__ import annotations

import msgspec

from didban.model.ooni import (
    DNSQuery,
    HTTPTransaction,
    NetworkEvent,
    TCPConnect,
    THResponse,
    TLSHandshake,
)

# The df-* formats these tests use (OONI's ``extensions`` envelope key).
APP_EXTENSIONS: dict[str, int] = {
    "dnst": 0,
    "httpt": 0,
    "netevents": 0,
    "tcpconnect": 0,
    "tlshandshake": 0,
}
STUN_EXTENSIONS: dict[str, int] = {"dnst": 0, "netevents": 0}


class URLGetterKeys(msgspec.Struct, kw_only=True):
    """OONI ``urlgetter`` test keys (ts-027): what every IM test starts from."""

    agent: str = "redirect"
    failed_operation: str | None = None
    failure: str | None = None
    network_events: list[NetworkEvent] = msgspec.field(default_factory=list)
    queries: list[DNSQuery] = msgspec.field(default_factory=list)
    requests: list[HTTPTransaction] = msgspec.field(default_factory=list)
    tcp_connect: list[TCPConnect] = msgspec.field(default_factory=list)
    tls_handshakes: list[TLSHandshake] = msgspec.field(default_factory=list)


class TelegramTestKeys(URLGetterKeys, kw_only=True):
    """ts-020: both blocking keys start true; any data centre answering clears them."""

    telegram_http_blocking: bool = True
    telegram_tcp_blocking: bool = True
    telegram_web_failure: str | None = None
    telegram_web_status: str = "ok"


class SignalTestKeys(URLGetterKeys, kw_only=True):
    """ts-029: any backend failing makes the status ``blocked``."""

    signal_backend_status: str = "ok"
    signal_backend_failure: str | None = None


class WhatsAppTestKeys(URLGetterKeys, kw_only=True):
    """ts-018."""

    registration_server_failure: str | None = None
    registration_server_status: str = "ok"
    whatsapp_endpoints_blocked: list[str] = msgspec.field(default_factory=list)
    whatsapp_endpoints_dns_inconsistent: list[str] = msgspec.field(default_factory=list)
    whatsapp_endpoints_status: str = "ok"
    whatsapp_web_failure: str | None = None
    whatsapp_web_status: str = "ok"


class FacebookMessengerTestKeys(URLGetterKeys, kw_only=True):
    """ts-019 (keys with ``_`` since 0.4.0 of the spec; probe-cli 0.2.1)."""

    facebook_b_api_dns_consistent: bool | None = None
    facebook_b_api_reachable: bool | None = None
    facebook_b_graph_dns_consistent: bool | None = None
    facebook_b_graph_reachable: bool | None = None
    facebook_edge_dns_consistent: bool | None = None
    facebook_edge_reachable: bool | None = None
    facebook_external_cdn_dns_consistent: bool | None = None
    facebook_external_cdn_reachable: bool | None = None
    facebook_scontent_cdn_dns_consistent: bool | None = None
    facebook_scontent_cdn_reachable: bool | None = None
    facebook_star_dns_consistent: bool | None = None
    facebook_star_reachable: bool | None = None
    facebook_stun_dns_consistent: bool | None = None
    facebook_stun_reachable: bool | None = None
    facebook_dns_blocking: bool | None = None
    facebook_tcp_blocking: bool | None = None


class STUNControlRequest(msgspec.Struct):
    """didban's helper extension ``POST /x-didban/stun``: the same Binding request to
    ``endpoint`` (``host:port``) from the control vantage point."""

    endpoint: str


class STUNControlResponse(msgspec.Struct):
    """The helper's answer: what it resolved and how its Binding transaction ended (the
    address the server saw is not returned)."""

    endpoint: str
    failure: str | None = None
    addresses: list[str] = msgspec.field(default_factory=list)
    response_type: str | None = None


class StunReachabilityTestKeys(msgspec.Struct, kw_only=True):
    """ts-025: one STUN binding request to ``endpoint`` (``host:port``). The reply (which
    holds the probe's public address) is never recorded, only its size and timing."""

    endpoint: str = ""
    failure: str | None = None
    network_events: list[NetworkEvent] = msgspec.field(default_factory=list)
    queries: list[DNSQuery] = msgspec.field(default_factory=list)
    # didban extensions: the transaction's outcome beside OONI's keys, and the same
    # transaction made by the test helper (the control)
    x_didban_rtt: float | None = None  # seconds from request to reply
    x_didban_response_type: str | None = None  # "binding_success", "binding_error", ...
    x_didban_control: STUNControlResponse | None = None
    x_didban_control_failure: str | None = None


class HTTP3TestKeys(URLGetterKeys, kw_only=True):
    """didban's HTTP/3 test, written as OONI ``urlgetter`` with ``HTTP3Enabled=true``:
    the QUIC handshake is in ``tls_handshakes`` (``network: udp``), the GET in
    ``requests``; beside them a TCP+TLS baseline to the same address (records tagged
    ``x_didban_baseline``) and the test helper's answer for the same endpoint."""

    x_didban_quic_address: str | None = None
    x_didban_control: THResponse | None = None
    x_didban_control_failure: str | None = None
    x_didban_http3_throughput: float | None = None
