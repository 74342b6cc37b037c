"""Signed webhook requests: the signature scheme and one HTTP POST.

Every alert is a JSON POST with two headers (docs/events.md "Alerts"):

* ``Didban-Idempotency-Key: <event id>:<start|end>`` — the same on every retry, so a
  receiver that saw it already can drop the copy (delivery is at least once);
* ``Didban-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
  HMAC-SHA256(secret, ``"<t>." + body``) — the timestamp is inside the signature, so an old
  request replayed later fails the receiver's freshness check (``verify`` allows 300 s).

The client is the standard library's ``http.client`` (one request, a hard timeout).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ssl
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from didban import __version__

SIGNATURE_HEADER: Final = "Didban-Signature"
IDEMPOTENCY_HEADER: Final = "Didban-Idempotency-Key"
TOLERANCE: Final = 300.0


class BadUrl(ValueError):
    """A webhook URL didban cannot post to (one sentence)."""


def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host; BadUrl otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadUrl(f"{url!r} is not an http:// or https:// URL with a host")
    try:
        _ = parts.port
    except ValueError:
        raise BadUrl(f"{url!r} has an invalid port") from None
    return url


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Didban-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, now: float | None = None, tolerance: float = TOLERANCE
) -> bool:
    """What a receiver does: the signature matches and its timestamp is fresh."""
    fields = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str  # "200", "timed out", "connection refused", …


def post(url: str, body: bytes, secret: str, key: str, timeout: float) -> Outcome:
    """POST ``body`` to ``url`` signed with ``secret``; ok on any 2xx status."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"didban/{__version__}",
        IDEMPOTENCY_HEADER: key,
        SIGNATURE_HEADER: sign(secret, body, int(time.time())),
    }
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return Outcome(200 <= resp.status < 300, str(resp.status))
    except TimeoutError:  # socket.timeout is TimeoutError
        return Outcome(False, "timed out")
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(False, getattr(exc, "strerror", None) or type(exc).__name__)
    finally:
        conn.close()
