"""The exception → OONI failure table (censorship-techniques.md §3, df-007)."""

from __future__ import annotations

import errno
import socket
import ssl

import dns.exception
import dns.resolver
import h11
import pytest

from didban.model import failures
from didban.net import errors


def _verify_error(code: int) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_code = code
    return exc


CASES: list[tuple[BaseException, str]] = [
    (ConnectionResetError(errno.ECONNRESET, "reset"), "connection_reset"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connection_refused"),
    (ConnectionAbortedError(errno.ECONNABORTED, "aborted"), "connection_aborted"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "host_unreachable"),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), "network_unreachable"),
    (OSError(errno.ENETDOWN, "Network is down"), "network_down"),
    (OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"), "address_not_available"),
    (OSError(errno.ETIMEDOUT, "timed out"), "generic_timeout_error"),
    (TimeoutError(), "generic_timeout_error"),
    (ssl.SSLEOFError(8, "UNEXPECTED_EOF_WHILE_READING"), "eof_error"),
    (ssl.SSLError(1, "TLSV1_ALERT_UNRECOGNIZED_NAME"), "ssl_failed_handshake"),
    (_verify_error(62), "ssl_invalid_hostname"),
    (_verify_error(20), "ssl_unknown_authority"),
    (_verify_error(18), "ssl_unknown_authority"),
    (_verify_error(10), "ssl_invalid_certificate"),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "dns_nxdomain_error"),
    (socket.gaierror(socket.EAI_AGAIN, "Temporary failure"), "dns_temporary_failure"),
    (socket.gaierror(socket.EAI_FAIL, "Non-recoverable"), "dns_non_recoverable_failure"),
    (dns.resolver.NXDOMAIN(), "dns_nxdomain_error"),
    (dns.resolver.NoAnswer(), "dns_no_answer"),
    (dns.exception.Timeout(), "generic_timeout_error"),
    (dns.exception.FormError(), "dns_server_misbehaving"),
    (
        h11.RemoteProtocolError("peer closed connection without sending complete message body"),
        "eof_error",
    ),
    (errors.QUICTerminated(0x100 + 42, "hostname 'x' doesn't match"), "ssl_invalid_hostname"),
    (errors.QUICTerminated(0x100 + 48, "unknown ca"), "ssl_unknown_authority"),
    (errors.QUICTerminated(0x100 + 120, "No common ALPN protocols"), "ssl_failed_handshake"),
    (errors.QUICTerminated(0x11, "version negotiation"), "quic_incompatible_version"),
    (errors.NetFailure("dns_refused_error"), "dns_refused_error"),
]


@pytest.mark.parametrize(("exc", "expected"), CASES, ids=[type(e).__name__ for e, _ in CASES])
def test_table(exc: BaseException, expected: str) -> None:
    assert errors.classify(exc) == expected


def test_every_mapped_string_is_an_ooni_failure() -> None:
    for exc, _ in CASES:
        assert failures.is_known(errors.classify(exc))


def test_unknown_errors_keep_a_reason() -> None:
    got = errors.classify(ValueError("weird"))
    assert got.startswith("unknown_failure: ") and "weird" in got
    got = errors.classify(OSError(errno.EMSGSIZE, "Message too long"))
    assert got == "unknown_failure: message too long"
    got = errors.classify(errors.QUICTerminated(0x3, "flow control"))
    assert got.startswith("unknown_failure: quic error code 0x3")
