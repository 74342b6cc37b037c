"""OONI's data models of the app tests, as the field names and types ooni/data declares them
(``oonidata.models.nettests``: Telegram, Signal, Whatsapp, FacebookMessenger,
StunReachability, UrlGetter; ``oonidata.models.dataformats`` for the df-* records), written
here as strict msgspec Structs: :func:`check` decodes a measurement the way OONI's pipeline
loads it and fails on a missing required field or a value of the wrong type. Unknown keys
(didban's ``x_didban_*``) are allowed, as OONI's loader allows them.

The oonidata package itself cannot be installed beside didban (it pins cryptography 38 and
click 8.0), so its model facts are restated here, not its code.
"""

from __future__ import annotations

from typing import Any

import msgspec

Failure = str | None
MaybeBinary = str | dict[str, str] | None


class BinaryData(msgspec.Struct):
    format: str
    data: str


class DNSAnswer(msgspec.Struct):
    answer_type: str
    asn: int | None = None
    as_org_name: str | None = None
    hostname: str | None = None
    ipv4: str | None = None
    ipv6: str | None = None
    ttl: int | None = None


class DNSQuery(msgspec.Struct):
    hostname: str
    query_type: str
    failure: Failure = None
    engine: str | None = None
    answers: list[DNSAnswer] | None = None
    raw_response: str | None = None
    rcode: int | None = None
    resolver_address: str | None = None
    transaction_id: int | None = None
    t: float | None = None
    t0: float | None = None


class TCPConnectStatus(msgspec.Struct):
    success: bool
    blocked: bool | None = None
    failure: str | bool | None = None


class TCPConnect(msgspec.Struct):
    ip: str
    port: int
    status: TCPConnectStatus
    transaction_id: int | None = None
    t: float | None = None
    t0: float | None = None


class TLSHandshake(msgspec.Struct):
    network: str | None = None
    address: str | None = None
    cipher_suite: str | None = None
    failure: Failure = None
    so_error: Failure = None
    negotiated_protocol: str | None = None
    no_tls_verify: bool | None = None
    peer_certificates: list[BinaryData] | None = None
    server_name: str | None = None
    tags: list[str] | None = None
    tls_version: str | None = None
    t: float | None = None
    t0: float | None = None
    transaction_id: int | None = None


class NetworkEvent(msgspec.Struct):
    operation: str
    t: float
    failure: Failure = None
    address: str | None = None
    num_bytes: int | None = None
    proto: str | None = None
    tags: list[str] | None = None
    transaction_id: int | str | None = None  # oonidata says str; OONI's probes write ints


class TorInfo(msgspec.Struct):
    is_tor: bool
    exit_ip: str | None = None
    exit_name: str | None = None


class HTTPRequest(msgspec.Struct):
    url: str = ""
    method: str | None = None
    body: MaybeBinary = None
    body_is_truncated: bool | None = None
    headers: dict[str, str] | None = None
    headers_list: list[list[MaybeBinary]] | None = None
    tor: TorInfo | None = None
    x_transport: str | None = "tcp"


class HTTPResponse(msgspec.Struct):
    code: int | None = None
    body: MaybeBinary = None
    body_is_truncated: bool | None = None
    headers: dict[str, str] | None = None
    headers_list: list[list[MaybeBinary]] | None = None


class HTTPTransaction(msgspec.Struct):
    failure: Failure = None
    request: HTTPRequest | None = None
    response: HTTPResponse | None = None
    network: str | None = None
    address: str | None = None
    alpn: str | None = None
    transaction_id: int | None = None
    t: float | None = None
    t0: float | None = None


class URLGetterKeys(msgspec.Struct):
    client_resolver: str | None = None
    failure: Failure = None
    failed_operation: str | None = None
    agent: str | None = None
    socksproxy: str | None = None
    network_events: list[NetworkEvent] | None = None
    queries: list[DNSQuery] | None = None
    requests: list[HTTPTransaction] | None = None
    tcp_connect: list[TCPConnect] | None = None
    tls_handshakes: list[TLSHandshake] | None = None


class TelegramKeys(URLGetterKeys):
    telegram_http_blocking: bool | None = None
    telegram_tcp_blocking: bool | None = None
    telegram_web_failure: str | None = None
    telegram_web_status: str | None = None


class SignalKeys(URLGetterKeys):
    signal_backend_status: str | None = None
    signal_backend_failure: str | None = None


class WhatsappKeys(URLGetterKeys):
    registration_server_failure: str | None = None
    registration_server_status: str | None = None
    whatsapp_endpoints_status: str | None = None
    whatsapp_endpoints_blocked: list[str] | None = None
    whatsapp_endpoints_dns_inconsistent: list[str] | None = None
    whatsapp_web_failure: str | None = None
    whatsapp_web_status: str | None = None


class FacebookMessengerKeys(msgspec.Struct):
    facebook_b_api_dns_consistent: bool | None = None
    facebook_b_api_reachable: bool | None = None
    facebook_b_graph_dns_consistent: bool | None = None
    facebook_b_graph_reachable: bool | None = None
    facebook_dns_blocking: bool | None = None
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
    facebook_tcp_blocking: bool | None = None
    socksproxy: str | None = None
    tcp_connect: list[TCPConnect] | None = None
    queries: list[DNSQuery] | None = None


class StunReachabilityKeys(msgspec.Struct):
    client_resolver: str | None = None
    failure: Failure = None
    endpoint: str | None = None
    network_events: list[NetworkEvent] | None = None
    queries: list[DNSQuery] | None = None


class BaseMeasurement(msgspec.Struct):
    input: str | list[str] | None
    report_id: str
    measurement_start_time: str
    test_start_time: str
    probe_asn: str
    probe_cc: str
    test_name: str
    test_version: str
    test_runtime: float
    software_name: str
    software_version: str
    test_keys: dict[str, Any]
    probe_ip: str | None = None
    annotations: dict[str, str] | None = None
    resolver_asn: str | None = None
    resolver_ip: str | None = None
    resolver_network_name: str | None = None
    probe_network_name: str | None = None
    test_helpers: dict[str, Any] | None = None
    data_format_version: str | None = None
    measurement_uid: str | None = None


TEST_KEYS: dict[str, type[msgspec.Struct]] = {
    "telegram": TelegramKeys,
    "signal": SignalKeys,
    "whatsapp": WhatsappKeys,
    "facebook_messenger": FacebookMessengerKeys,
    "stunreachability": StunReachabilityKeys,
    "urlgetter": URLGetterKeys,
}


def check(measurement: dict[str, Any]) -> None:
    """Decode ``measurement`` with OONI's model of its test; raises
    ``msgspec.ValidationError`` (naming the field) when it does not load."""
    base = msgspec.convert(measurement, BaseMeasurement)
    msgspec.convert(base.test_keys, TEST_KEYS[base.test_name])
