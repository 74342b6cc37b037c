"""OONI data format (data_format_version 0.2.0) as msgspec structs.

These are the structs didban *writes*: the base envelope (df-000), DNS (df-002 dnst),
TCP connect (df-005), HTTP (df-001 httpt), TLS (df-006), network events (df-008),
the Web Connectivity test keys (ts-017) and the test-helper (oohelperd) request and
response. Readers of foreign measurements (analysis, store) must accept any field
missing or null, so they decode into their own lenient structs or plain dicts.

didban's own extensions use keys prefixed ``x_didban_`` and never redefine OONI's.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

import msgspec

DATA_FORMAT_VERSION = "0.2.0"
SOFTWARE_NAME = "didban"
SCRUBBED_IP = "127.0.0.1"

# OONI's page title: the first <title>X</title> (any case) with 1-512 characters of X and no
# '<' in X (probe-cli's measurexlite and webconnectivity's HTTP-diff use this expression).
_TITLE: Final = re.compile(r"(?i)<title>([^<]{1,512})</title>")


def page_title(text: str) -> str:
    """The title OONI extracts from a decoded body; "" if it has none."""
    m = _TITLE.search(text)
    return m.group(1) if m else ""


class BinaryData(msgspec.Struct, frozen=True):
    """OONI's MaybeBinaryData when the bytes are not valid UTF-8."""

    data: str
    format: Literal["base64"] = "base64"


# ---------------------------------------------------------------- dnst (df-002)


class DNSAnswer(msgspec.Struct, omit_defaults=True):
    answer_type: str
    ttl: int | None = None
    ipv4: str | None = None
    ipv6: str | None = None
    hostname: str | None = None
    asn: int | None = None
    as_org_name: str | None = None


class DNSQuery(msgspec.Struct):
    hostname: str
    query_type: str
    engine: str
    resolver_address: str
    failure: str | None = None
    answers: list[DNSAnswer] | None = None
    rcode: int | None = None
    raw_response: str | None = None
    t0: float = 0.0
    t: float = 0.0
    tags: list[str] | None = None
    transaction_id: int = 0


class DNSDuplicateResponse(DNSQuery):
    """A late or duplicate UDP reply to one query (OONI LTE ``x_dns_duplicate_responses``):
    the fields of a query record."""


# ---------------------------------------------------------- tcpconnect (df-005)


class TCPConnectStatus(msgspec.Struct):
    success: bool
    failure: str | None = None
    blocked: bool | None = None


class TCPConnect(msgspec.Struct):
    ip: str
    port: int
    status: TCPConnectStatus
    t0: float = 0.0
    t: float = 0.0
    tags: list[str] | None = None
    transaction_id: int = 0


# -------------------------------------------------------- tlshandshake (df-006)


class TLSHandshake(msgspec.Struct):
    network: str
    address: str
    server_name: str
    failure: str | None = None
    cipher_suite: str = ""
    negotiated_protocol: str = ""
    tls_version: str = ""
    no_tls_verify: bool = False
    peer_certificates: list[BinaryData] | None = None
    so_error: str | None = None
    t0: float = 0.0
    t: float = 0.0
    tags: list[str] | None = None
    transaction_id: int = 0
    # didban extension: OpenSSL verify code and message when verification failed.
    x_didban_verify_code: int | None = None
    x_didban_verify_message: str | None = None


# --------------------------------------------------------------- httpt (df-001)


class HTTPTor(msgspec.Struct):
    exit_ip: str | None = None
    exit_name: str | None = None
    is_tor: bool = False


class HTTPRequest(msgspec.Struct):
    url: str
    method: str = "GET"
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    headers_list: list[tuple[str, str]] = msgspec.field(default_factory=list)
    body: str = ""
    body_is_truncated: bool = False
    tor: HTTPTor = msgspec.field(default_factory=HTTPTor)
    x_transport: str = "tcp"


class HTTPResponse(msgspec.Struct):
    code: int = 0
    headers: dict[str, str] | None = None
    headers_list: list[tuple[str, str]] | None = None
    body: str | BinaryData | None = None
    body_is_truncated: bool = False
    # didban extensions: whole-body length before truncation and extracted title.
    x_didban_body_length: int | None = None
    x_didban_title: str | None = None


class HTTPTransaction(msgspec.Struct):
    request: HTTPRequest
    response: HTTPResponse | None = None
    failure: str | None = None
    network: str = "tcp"
    address: str = ""
    alpn: str = ""
    t0: float = 0.0
    t: float = 0.0
    tags: list[str] | None = None
    transaction_id: int = 0


# ----------------------------------------------------------- netevents (df-008)


class NetworkEvent(msgspec.Struct, omit_defaults=True):
    operation: str
    t: float
    failure: str | None = None
    t0: float | None = None
    address: str | None = None
    num_bytes: int | None = None
    proto: str | None = None
    tags: list[str] | None = None
    transaction_id: int | None = None


# ------------------------------------------------------ test helper (oohelperd)


class THRequest(msgspec.Struct):
    http_request: str
    tcp_connect: list[str] = msgspec.field(default_factory=list)
    http_request_headers: dict[str, list[str]] = msgspec.field(default_factory=dict)
    x_quic_enabled: bool = False


class THTCPConnectResult(msgspec.Struct):
    status: bool
    failure: str | None = None


class THTLSHandshakeResult(msgspec.Struct):
    server_name: str
    status: bool
    failure: str | None = None


class THHTTPRequestResult(msgspec.Struct):
    body_length: int = -1
    discovered_h3_endpoint: str = ""
    failure: str | None = None
    title: str = ""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    status_code: int = -1
    # didban extension: body bytes/s of the helper's own read of the final response (None
    # when not measured); OONI clients ignore unknown keys
    x_didban_throughput: float | None = None


class THDNSResult(msgspec.Struct):
    failure: str | None = None
    addrs: list[str] = msgspec.field(default_factory=list)


class THIPInfo(msgspec.Struct):
    asn: int = 0
    flags: int = 0


class THResponse(msgspec.Struct):
    tcp_connect: dict[str, THTCPConnectResult] = msgspec.field(default_factory=dict)
    tls_handshake: dict[str, THTLSHandshakeResult] = msgspec.field(default_factory=dict)
    quic_handshake: dict[str, THTLSHandshakeResult] = msgspec.field(default_factory=dict)
    http_request: THHTTPRequestResult | None = None
    http3_request: THHTTPRequestResult | None = None
    dns: THDNSResult = msgspec.field(default_factory=THDNSResult)
    ip_info: dict[str, THIPInfo] = msgspec.field(default_factory=dict)


# ip_info.flags bits (oohelperd)
IPINFO_RESOLVED_BY_PROBE = 1
IPINFO_RESOLVED_BY_TH = 2
IPINFO_BOGON = 4
IPINFO_VALID_FOR_DOMAIN = 8


# ------------------------------------------------- web_connectivity (ts-017)


class WebConnectivityTestKeys(msgspec.Struct):
    """Test keys of a web_connectivity measurement.

    didban's probe only *records*: the verdict keys (``blocking``, ``accessible``,
    ``dns_consistency``, the ``*_match`` keys) are filled by ``didban.analysis`` so that
    OONI tooling reading our files finds them where it expects.
    """

    agent: str = "redirect"
    client_resolver: str | None = None
    retries: int | None = None
    socksproxy: str | None = None
    network_events: list[NetworkEvent] = msgspec.field(default_factory=list)
    tls_handshakes: list[TLSHandshake] = msgspec.field(default_factory=list)
    queries: list[DNSQuery] = msgspec.field(default_factory=list)
    tcp_connect: list[TCPConnect] = msgspec.field(default_factory=list)
    requests: list[HTTPTransaction] = msgspec.field(default_factory=list)
    x_dns_duplicate_responses: list[DNSDuplicateResponse] = msgspec.field(default_factory=list)
    x_doh: dict[str, Any] | None = None
    x_do53: dict[str, Any] | None = None
    x_control_request: THRequest | None = None
    control: THResponse | None = None
    control_failure: str | None = None
    dns_experiment_failure: str | None = None
    dns_consistency: str | None = None
    http_experiment_failure: str | None = None
    body_length_match: bool | None = None
    body_proportion: float | None = None
    headers_match: bool | None = None
    status_code_match: bool | None = None
    title_match: bool | None = None
    blocking: str | bool | None = None
    accessible: bool | None = None
    x_didban_quic: list[dict[str, Any]] | None = None
    # didban extension: body bytes per second of the final HTTP response (throttling).
    x_didban_http_throughput: float | None = None


# ------------------------------------------------------------ envelope (df-000)


class Measurement(msgspec.Struct):
    """The OONI base envelope; ``test_keys`` is experiment specific."""

    test_name: str
    test_version: str
    input: str | None
    report_id: str
    measurement_start_time: str
    test_start_time: str
    probe_cc: str = "ZZ"
    probe_asn: str = "AS0"
    probe_network_name: str | None = None
    probe_ip: str = SCRUBBED_IP
    resolver_asn: str = "AS0"
    resolver_ip: str = SCRUBBED_IP
    resolver_network_name: str | None = None
    software_name: str = SOFTWARE_NAME
    software_version: str = "0.1.0"
    data_format_version: str = DATA_FORMAT_VERSION
    annotations: dict[str, str] = msgspec.field(default_factory=dict)
    extensions: dict[str, int] = msgspec.field(default_factory=dict)
    test_helpers: dict[str, Any] = msgspec.field(default_factory=dict)
    options: list[str] = msgspec.field(default_factory=list)
    test_runtime: float = 0.0
    test_keys: Any = None
    id: str | None = None


# Extension versions we emit (OONI's convention: name → version integer).
WEB_CONNECTIVITY_EXTENSIONS: dict[str, int] = {
    "dnst": 0,
    "httpt": 0,
    "netevents": 0,
    "tcpconnect": 0,
    "tlshandshake": 0,
}

# Fields OONI's base spec requires; used by format validation in tests and the collector.
REQUIRED_ENVELOPE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "data_format_version": str,
    "input": (str, type(None)),
    "measurement_start_time": str,
    "probe_asn": str,
    "probe_cc": str,
    "report_id": str,
    "software_name": str,
    "software_version": str,
    "test_keys": dict,
    "test_name": str,
    "test_start_time": str,
    "test_version": str,
}
