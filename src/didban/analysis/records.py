"""Lenient typed views of the measurement fields the rules read, and how to decode them.

The rules never walk generic dicts: a measurement is decoded into the small msgspec
Structs below (only the fields a rule reads; every field optional, unknown keys skipped),
which is both fast and total. When a record does not fit the types (a ``failure`` that is a
number, a list where a map was expected), ``lenient`` converts it field by field and drops
only what does not fit, so malformed or partial input never raises.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Final, Union

import msgspec

NULL: Final = msgspec.Raw(b"null")  # an absent raw field


class Binary(msgspec.Struct):
    """OONI's MaybeBinaryData: ``{"format": "base64", "data": ...}``."""

    data: str = ""
    format: str = "base64"


class Answer(msgspec.Struct):
    ipv4: str | None = None
    ipv6: str | None = None
    hostname: str | None = None
    asn: int | None = None


class Query(msgspec.Struct):
    hostname: str | None = None
    query_type: str | None = None
    engine: str | None = None
    resolver_address: str | None = None
    failure: str | None = None
    answers: list[Answer] | None = None
    tags: list[str] | None = None


class TCPStatus(msgspec.Struct):
    success: bool | None = None
    failure: str | None = None


class TCPConnect(msgspec.Struct):
    ip: str | None = None
    port: int | None = None
    status: TCPStatus | None = None
    tags: list[str] | None = None


class TLSHandshake(msgspec.Struct):
    address: str | None = None
    server_name: str | None = None
    failure: str | None = None
    no_tls_verify: bool | None = None
    tags: list[str] | None = None
    peer_certificates: msgspec.Raw = NULL  # decoded only for evidence (raw_certificates)


class HTTPRequest(msgspec.Struct):
    url: str | None = None


class HTTPResponse(msgspec.Struct):
    """Headers and body stay raw JSON until a rule needs them (most never do: HTTPS pages)."""

    code: int | None = None
    headers: msgspec.Raw = NULL
    body: msgspec.Raw = NULL
    body_is_truncated: bool | None = None
    x_didban_body_length: int | None = None
    x_didban_title: str | None = None


class HTTPExchange(msgspec.Struct):
    """One entry of ``test_keys.requests``: a request, its response or failure."""

    request: HTTPRequest | None = None
    response: HTTPResponse | None = None
    failure: str | None = None
    address: str | None = None
    tags: list[str] | None = None


class CtrlTCP(msgspec.Struct):
    status: bool | None = None
    failure: str | None = None


class CtrlTLS(msgspec.Struct):
    server_name: str | None = None
    status: bool | None = None
    failure: str | None = None


class CtrlHTTP(msgspec.Struct):
    body_length: int | None = None
    failure: str | None = None
    title: str | None = None
    headers: msgspec.Raw = NULL
    status_code: int | None = None
    x_didban_throughput: float | None = None  # didban's helper: its body bytes/s


class CtrlDNS(msgspec.Struct):
    failure: str | None = None
    addrs: list[str] | None = None


class CtrlIPInfo(msgspec.Struct):
    asn: int | None = None
    flags: int | None = None


class Control(msgspec.Struct):
    tcp_connect: dict[str, CtrlTCP] | None = None
    tls_handshake: dict[str, CtrlTLS] | None = None
    http_request: CtrlHTTP | None = None
    dns: CtrlDNS | None = None
    ip_info: dict[str, CtrlIPInfo] | None = None


class QuicAttempt(msgspec.Struct):
    """One entry of didban's ``x_didban_quic`` (an HTTP/3 attempt to one address)."""

    address: str | None = None
    failure: str | None = None


class WebKeys(msgspec.Struct):
    """web_connectivity test keys (v0.0.x–v0.4.x and v0.5/LTE, and didban's probe)."""

    queries: list[Query] | None = None
    x_dns_duplicate_responses: list[Query] | None = None
    tcp_connect: list[TCPConnect] | None = None
    tls_handshakes: list[TLSHandshake] | None = None
    requests: list[HTTPExchange] | None = None
    control: Control | None = None
    control_failure: str | None = None
    dns_experiment_failure: str | None = None
    http_experiment_failure: str | None = None
    x_didban_quic: list[QuicAttempt] | None = None
    x_didban_http_throughput: float | None = None  # didban's probe: final body bytes/s


class DNSCheckLookup(msgspec.Struct):
    failure: str | None = None
    queries: list[Query] | None = None
    x_dns_duplicate_responses: list[Query] | None = None
    tcp_connect: list[TCPConnect] | None = None
    tls_handshakes: list[TLSHandshake] | None = None


class DNSCheckKeys(msgspec.Struct):
    bootstrap: DNSCheckLookup | None = None
    bootstrap_failure: str | None = None
    lookups: dict[str, DNSCheckLookup] | None = None


class Meta(msgspec.Struct):
    """The base envelope (df-000) fields a verdict carries."""

    test_name: Any = None
    input: Any = None
    report_id: Any = None
    measurement_uid: Any = None
    probe_cc: Any = None
    probe_asn: Any = None
    measurement_start_time: Any = None


class Envelope(Meta):
    """Any measurement: the envelope, ``test_keys`` left raw."""

    test_keys: msgspec.Raw = NULL
    rule_id: Any = None  # present only in didban verdicts given by mistake
    rules_version: Any = None


class WebMeasurement(Meta):
    """A web_connectivity measurement decoded in one pass (the fast path)."""

    test_keys: WebKeys | None = None


class _Missing:
    pass


_FAIL: Final = _Missing()


def _fields(tp: type[msgspec.Struct]) -> tuple[msgspec.structs.FieldInfo, ...]:
    return msgspec.structs.fields(tp)


def lenient(value: Any, tp: Any) -> Any:
    """``value`` converted to ``tp``, dropping (to their defaults) the parts that do not fit.

    Returns the module's ``_FAIL`` sentinel when nothing of ``value`` fits ``tp``.
    """
    if tp is msgspec.Raw:
        try:
            return msgspec.Raw(msgspec.json.encode(value))
        except (TypeError, ValueError, OverflowError):
            return _FAIL
    try:
        return msgspec.convert(value, tp, strict=False)
    except (msgspec.ValidationError, TypeError, ValueError, OverflowError):
        pass
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arm in typing.get_args(tp):
            if arm is type(None):
                continue
            out = lenient(value, arm)
            if out is not _FAIL:
                return out
        return None if type(None) in typing.get_args(tp) else _FAIL
    if origin is list:
        if not isinstance(value, list):
            return _FAIL
        (item_tp,) = typing.get_args(tp)
        items = [lenient(v, item_tp) for v in value]
        return [v for v in items if v is not _FAIL]
    if origin is dict:
        if not isinstance(value, dict):
            return _FAIL
        _, val_tp = typing.get_args(tp)
        pairs = {str(k): lenient(v, val_tp) for k, v in value.items()}
        return {k: v for k, v in pairs.items() if v is not _FAIL}
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        if not isinstance(value, dict):
            return _FAIL
        kwargs: dict[str, Any] = {}
        for field in _fields(tp):
            if field.encode_name in value:
                out = lenient(value[field.encode_name], field.type)
                if out is not _FAIL:
                    kwargs[field.name] = out
        return tp(**kwargs)
    return _FAIL


def convert(value: Any, tp: type[msgspec.Struct]) -> Any:
    """``value`` as a ``tp`` Struct: strict and fast when it fits, lenient otherwise."""
    out = lenient(value, tp)
    return tp() if out is _FAIL else out


_ENVELOPE_DECODER: Final = msgspec.json.Decoder(Envelope)
_WEB_DECODER: Final = msgspec.json.Decoder(WebMeasurement)


def decode_web(data: bytes | str) -> WebMeasurement | None:
    """The one-pass typed decode; None when the record does not fit (use the slow path)."""
    try:
        return _WEB_DECODER.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def decode_envelope(data: bytes | str) -> Envelope:
    """The envelope of one JSON measurement. Raises ``msgspec.DecodeError`` on broken JSON."""
    try:
        return _ENVELOPE_DECODER.decode(data)
    except msgspec.ValidationError:
        generic = msgspec.json.decode(data)
        if not isinstance(generic, dict):
            raise msgspec.DecodeError("a measurement must be a JSON object") from None
        return envelope_from_dict(generic)


def envelope_from_dict(obj: dict[str, Any]) -> Envelope:
    fields = {k: obj.get(k) for k in Envelope.__struct_fields__ if k != "test_keys"}
    tk = obj.get("test_keys")
    return Envelope(**fields, test_keys=msgspec.Raw(msgspec.json.encode(tk)))


_BODY: Final[msgspec.json.Decoder[str | Binary | None]] = msgspec.json.Decoder(str | Binary | None)
_HEADERS: Final[msgspec.json.Decoder[dict[str, Any] | None]] = msgspec.json.Decoder(
    dict[str, Any] | None
)


def raw_body(raw: msgspec.Raw | None) -> str | Binary | None:
    """A raw ``response.body``: a string, base64 MaybeBinaryData, or None if neither."""
    if raw is None:
        return None
    try:
        return _BODY.decode(raw)
    except msgspec.ValidationError:
        return None


def raw_headers(raw: msgspec.Raw | None) -> dict[str, Any] | None:
    """A raw headers map, or None when absent or not a JSON object."""
    if raw is None:
        return None
    try:
        return _HEADERS.decode(raw)
    except msgspec.ValidationError:
        return None


_CERTS: Final[msgspec.json.Decoder[list[Binary] | None]] = msgspec.json.Decoder(list[Binary] | None)


def raw_certificates(raw: msgspec.Raw | None) -> list[Binary] | None:
    """A raw ``peer_certificates`` list (MaybeBinaryData items), or None if it is not one."""
    if raw is None:
        return None
    try:
        return _CERTS.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


_KEYS_DECODERS: Final[dict[type[msgspec.Struct], msgspec.json.Decoder[Any]]] = {
    tp: msgspec.json.Decoder(tp | None) for tp in (WebKeys, DNSCheckKeys)
}


def decode_keys(raw: msgspec.Raw, tp: type[msgspec.Struct]) -> Any:
    """Typed test keys (``WebKeys`` or ``DNSCheckKeys``) from raw JSON bytes; lenient when
    the strict decode fails."""
    try:
        out = _KEYS_DECODERS[tp].decode(raw)
    except msgspec.ValidationError:
        try:
            generic = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return None
        return None if not isinstance(generic, dict) else convert(generic, tp)
    return out
