"""Exception → OONI failure string: the one place every network error is normalised.

Sources for the table: OONI ``df-007-errors`` (the strings), probe-cli
``internal/netxlite/errno.go`` and ``classify.go`` (errno and resolver mapping), and the
measured Python behaviour in ``censorship-techniques.md`` §3 (see docs/net.md).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from typing import Final

from didban.model import failures

# OpenSSL X509_V_ERR_* codes (openssl/x509_vfy.h) → OONI failure string.
VERIFY_HOSTNAME_MISMATCH: Final = 62
_VERIFY_UNKNOWN_AUTHORITY: Final = frozenset(
    {
        2,  # unable to get issuer certificate
        18,  # self-signed leaf
        19,  # self-signed certificate in chain
        20,  # unable to get local issuer certificate
        21,  # unable to verify the first certificate
    }
)

_ERRNO: Final[dict[int, str]] = {
    errno.ECONNRESET: failures.CONNECTION_RESET,
    errno.ECONNREFUSED: failures.CONNECTION_REFUSED,
    errno.ECONNABORTED: failures.CONNECTION_ABORTED,
    errno.ETIMEDOUT: failures.GENERIC_TIMEOUT,
    errno.EHOSTUNREACH: failures.HOST_UNREACHABLE,
    errno.ENETUNREACH: failures.NETWORK_UNREACHABLE,
    errno.ENETDOWN: failures.NETWORK_DOWN,
    errno.EADDRNOTAVAIL: failures.ADDRESS_NOT_AVAILABLE,  # netxlite errno.go
    errno.EINTR: failures.INTERRUPTED,
    errno.EPIPE: failures.CONNECTION_RESET,
}

# getaddrinfo EAI_* codes (netxlite classifies the Go resolver's equivalents the same way).
_EAI: Final[dict[int, str]] = {
    socket.EAI_NONAME: failures.DNS_NXDOMAIN,
    socket.EAI_AGAIN: failures.DNS_TEMPORARY,
    socket.EAI_FAIL: failures.DNS_NON_RECOVERABLE,
    getattr(socket, "EAI_NODATA", -5): failures.DNS_NO_ANSWER,
    getattr(socket, "EAI_ADDRFAMILY", -9): failures.DNS_NO_ANSWER,
}


class NetFailure(Exception):
    """Raised inside didban.net when a step fails for a reason that is already a string."""

    def __init__(self, failure: str, detail: str = "") -> None:
        super().__init__(detail or failure)
        self.failure = failure


class QUICTerminated(Exception):
    """A QUIC connection ended by the peer or the stack (aioquic ``ConnectionTerminated``)."""

    def __init__(self, error_code: int, reason: str = "", frame_type: int | None = None) -> None:
        super().__init__(f"QUIC connection terminated: code={error_code} {reason}".strip())
        self.error_code = error_code
        self.reason = reason
        self.frame_type = frame_type


def verify_code_failure(code: int) -> str:
    """OONI failure for an OpenSSL certificate-verification error code."""
    if code == VERIFY_HOSTNAME_MISMATCH:
        return failures.SSL_INVALID_HOSTNAME
    if code in _VERIFY_UNKNOWN_AUTHORITY:
        return failures.SSL_UNKNOWN_AUTHORITY
    return failures.SSL_INVALID_CERTIFICATE


# TLS alert numbers (RFC 8446 §6) that identify a certificate problem.
_ALERT_BAD_CERTIFICATE: Final = 42
_ALERT_CERTIFICATE_EXPIRED: Final = 45
_ALERT_UNKNOWN_CA: Final = 48
QUIC_CRYPTO_ERROR_BASE: Final = 0x100  # RFC 9001 §4.8: CRYPTO_ERROR = 0x100 + TLS alert
QUIC_VERSION_NEGOTIATION_ERROR: Final = 0x11  # RFC 9368


def quic_failure(error_code: int, reason: str) -> str:
    """OONI failure for a QUIC ``CONNECTION_CLOSE`` (error code and reason phrase)."""
    if error_code == QUIC_VERSION_NEGOTIATION_ERROR or "version" in reason.lower():
        return failures.QUIC_INCOMPATIBLE_VERSION
    if QUIC_CRYPTO_ERROR_BASE <= error_code < QUIC_CRYPTO_ERROR_BASE + 0x100:
        alert = error_code - QUIC_CRYPTO_ERROR_BASE
        lowered = reason.lower()
        if "hostname" in lowered:
            return failures.SSL_INVALID_HOSTNAME
        if alert == _ALERT_UNKNOWN_CA or "unable to get local issuer" in lowered:
            return failures.SSL_UNKNOWN_AUTHORITY
        if alert in (_ALERT_BAD_CERTIFICATE, _ALERT_CERTIFICATE_EXPIRED):
            return failures.SSL_INVALID_CERTIFICATE
        return failures.SSL_FAILED_HANDSHAKE
    return failures.unknown(f"quic error code {error_code:#x}: {reason}".rstrip(": "))


def _dns_failure(exc: BaseException) -> str | None:
    """dnspython exceptions, by class name so this module does not import dnspython."""
    names = {c.__name__ for c in type(exc).__mro__ if c.__module__.startswith("dns.")}
    if not names:
        return None
    if "NXDOMAIN" in names:
        return failures.DNS_NXDOMAIN
    if "NoAnswer" in names:
        return failures.DNS_NO_ANSWER
    if "Timeout" in names or "LifetimeTimeout" in names:
        return failures.GENERIC_TIMEOUT
    if "NoNameservers" in names:
        return failures.DNS_SERVFAIL
    if names & {"FormError", "BadResponse", "UnexpectedSource", "Truncated", "TooBig"}:
        return failures.DNS_SERVER_MISBEHAVING
    if names & {"DNSException"}:
        return failures.unknown(f"dns: {exc}")
    return None


def _http_failure(exc: BaseException) -> str | None:
    """h11 / h2 protocol errors, matched by module so h11 and h2 stay optional here."""
    module = type(exc).__module__
    if not (module.startswith("h11") or module.startswith("h2.")):
        return None
    text = str(exc)
    if "peer closed connection" in text or "ConnectionTerminated" in text:
        return failures.EOF_ERROR
    return failures.unknown(f"{module.split('.')[0]}: {type(exc).__name__}: {text}")


def classify(exc: BaseException) -> str:
    """The OONI failure string for ``exc`` (never raises; unknown → ``unknown_failure: …``)."""
    if isinstance(exc, NetFailure):
        return exc.failure
    if isinstance(exc, QUICTerminated):
        return quic_failure(exc.error_code, exc.reason)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, socket.timeout)):
        return failures.GENERIC_TIMEOUT
    if isinstance(exc, asyncio.CancelledError):
        return failures.INTERRUPTED
    if isinstance(exc, ssl.SSLCertVerificationError):
        return verify_code_failure(exc.verify_code)
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return failures.EOF_ERROR
    if isinstance(exc, ssl.SSLError):
        return failures.SSL_FAILED_HANDSHAKE
    if isinstance(exc, socket.gaierror):
        return _EAI.get(exc.errno or 0, failures.unknown(f"getaddrinfo: {exc}"))
    if isinstance(exc, EOFError):
        return failures.EOF_ERROR
    dns_failure = _dns_failure(exc)
    if dns_failure is not None:
        return dns_failure
    http_failure = _http_failure(exc)
    if http_failure is not None:
        return http_failure
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno in _ERRNO:
        return _ERRNO[exc.errno]
    if isinstance(exc, ConnectionResetError):
        return failures.CONNECTION_RESET
    if isinstance(exc, ConnectionRefusedError):
        return failures.CONNECTION_REFUSED
    if isinstance(exc, ConnectionAbortedError):
        return failures.CONNECTION_ABORTED
    if isinstance(exc, OSError) and exc.strerror:
        return failures.unknown(exc.strerror.lower())
    return failures.unknown(f"{type(exc).__name__}: {exc}".rstrip(": "))
