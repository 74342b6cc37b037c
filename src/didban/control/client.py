"""Client of the test helper: POST a ``THRequest`` to an oohelperd-compatible helper, and
ask didban's helper which address it sees (``whoami``).

Works with didban's helper and OONI's (``https://N.th.ooni.org``); http and https URLs.
The request goes over didban's own TCP/TLS/HTTP code (no proxy settings, no system
trust surprises); failures come back as OONI failure strings for ``control_failure``.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from didban import __version__
from didban.model import failures as F
from didban.model.ooni import THRequest, THResponse
from didban.net import http as httpmod
from didban.net.trace import Trace

DEFAULT_TIMEOUT = 30.0
_MAP_FIELDS = ("tcp_connect", "tls_handshake", "quic_handshake", "ip_info")
WHOAMI_PATH = "/x-didban/whoami"  # didban's helper only (control.server.WHOAMI)


def decode_response(body: bytes) -> THResponse:
    """A helper's JSON answer, tolerating OONI's nulls for empty maps; raises on bad JSON."""
    data: Any = msgspec.json.decode(body)
    if not isinstance(data, dict):
        raise msgspec.ValidationError("the helper's answer is not a JSON object")
    for key in _MAP_FIELDS:
        if data.get(key) is None:
            data.pop(key, None)
    if data.get("dns") is None:
        data.pop("dns", None)
    elif isinstance(data["dns"], dict) and data["dns"].get("addrs") is None:
        data["dns"]["addrs"] = []
    for key in ("http_request", "http3_request"):
        if isinstance(data.get(key), dict) and data[key].get("headers") is None:
            data[key]["headers"] = {}
    return msgspec.convert(data, THResponse)


async def query(
    helper_url: str,
    request: THRequest,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    ca_file: str | None = None,
    address: str | None = None,
) -> THResponse | str:
    """The helper's response, or an OONI failure string (``control_failure``).

    ``address`` (``"ip"``/``"ip:port"``) skips resolving the helper's host; an IP-literal
    helper URL needs none. ``ca_file`` is the CA bundle for https helpers.
    """
    parts = urlsplit(helper_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return F.unknown(f"bad helper URL {helper_url!r}")
    if address is None:
        try:
            ipaddress.ip_address(parts.hostname)
            address = parts.hostname
        except ValueError:
            pass
    body = msgspec.json.encode(request)
    headers = (
        ("User-Agent", f"didban/{__version__}"),
        ("Accept", "application/json"),
        ("Content-Type", "application/json"),
    )
    try:
        async with asyncio.timeout(timeout):
            res = await httpmod.fetch(
                helper_url,
                trace=Trace(record_events=False),
                address=address,
                headers=headers,
                method="POST",
                body=body,
                ca_file=ca_file,
                max_redirects=0,
                body_cap=16 << 20,
                timeout=timeout,
                tcp_timeout=timeout,
                tls_timeout=timeout,
            )
    except TimeoutError:
        return F.GENERIC_TIMEOUT
    if res.failure is not None:
        return res.failure
    final = res.requests[0].response if res.requests else None
    if final is None or final.code != 200:
        return F.HTTP_UNEXPECTED_STATUS_CODE
    try:
        return decode_response(res.final_body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return F.JSON_PARSE_ERROR


async def whoami(
    helper_url: str, timeout: float = 10.0, *, ca_file: str | None = None
) -> str | None:
    """The probe's address as didban's helper sees it (``GET /x-didban/whoami``); None when
    the helper does not say (OONI's helpers have no such resource), cannot be reached, or
    reports its own address (a helper behind a proxy on the same host sees the proxy)."""
    parts = urlsplit(helper_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    address = None
    try:
        ipaddress.ip_address(parts.hostname)
        address = parts.hostname
    except ValueError:
        pass
    url = urlunsplit((parts.scheme, parts.netloc, WHOAMI_PATH, "", ""))
    try:
        async with asyncio.timeout(timeout):
            res = await httpmod.fetch(
                url,
                trace=Trace(record_events=False),
                address=address,
                headers=(("User-Agent", f"didban/{__version__}"), ("Accept", "application/json")),
                ca_file=ca_file,
                max_redirects=0,
                body_cap=4096,
                timeout=timeout,
                tcp_timeout=timeout,
                tls_timeout=timeout,
            )
    except TimeoutError:
        return None
    final = res.requests[0].response if res.requests else None
    if res.failure is not None or final is None or final.code != 200:
        return None
    try:
        data = msgspec.json.decode(res.final_body)
        found = data.get("address") if isinstance(data, dict) else None
        seen = str(ipaddress.ip_address(found)) if isinstance(found, str) else None
    except (msgspec.DecodeError, ValueError):
        return None
    helper_ip = (res.requests[0].address or "").rsplit(":", 1)[0].strip("[]")
    return None if seen is None or seen == helper_ip else seen
