"""The ``tls_mitm`` listener: the censor's TLS-terminating interceptor, inside the isp namespace.

The kernel redirects the client's TCP flows to the rule's addresses here (nat REDIRECT to
``enforcers.base.MITM_PORT``). Each connection gets a TLS handshake with a certificate for the
client's SNI, issued on the fly by a CA created in memory when the listener starts: it is
never written anywhere and no client trusts it, like a national root the user never
installed (Kazakhstan 2019). A client that verifies aborts the handshake (OONI:
``ssl_unknown_authority``); one that does not gets a short page saying it was intercepted.
Every connection is logged with the rule that redirected it, its original destination
and the SNI.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Callable

import trustme

from didban.lab.censor.enforcers.addresses import TLSMitm
from didban.lab.censor.enforcers.base import MITM_PORT

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
HANDSHAKE_TIMEOUT = 10.0
PAGE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 83\r\n"
    b"Connection: close\r\n\r\n"
    b"<html><head><title>intercepted</title></head><body>didban lab censor</body></html>\n"
)

Logger = Callable[[str, str, str, str, str], None]  # rule id, action, src, dst, detail


class MitmServer:
    """Accepts redirected flows on ``port`` (all addresses of the namespace) and
    intercepts them; ``rules`` gives the current policy's ``tls_mitm`` rules (for the log)."""

    def __init__(
        self, rules: Callable[[], list[TLSMitm]], log: Logger, port: int = MITM_PORT
    ) -> None:
        self._rules = rules
        self._log = log
        self._ca = trustme.CA(organization_name="didban lab censor (untrusted root)")
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._sni = threading.local()
        self._default = self._context("intercepted.invalid")
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("0.0.0.0", port))
        self._sock.listen(256)
        self._closed = False
        threading.Thread(target=self._accept, name="tls-mitm", daemon=True).start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def _context(self, name: str) -> ssl.SSLContext:
        with self._lock:
            ctx = self._contexts.get(name)
            if ctx is None:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                self._ca.issue_cert(name, organization_name="didban lab censor").configure_cert(ctx)
                ctx.set_alpn_protocols(["http/1.1"])
                ctx.sni_callback = self._pick
                self._contexts[name] = ctx
            return ctx

    def _pick(self, sslobj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        self._sni.name = name or ""
        if name:
            sslobj.context = self._context(name.lower().rstrip("."))

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, peer = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, peer), daemon=True).start()

    def _rule_for(self, ip: str, port: int) -> str:
        try:
            for rule in self._rules():
                if rule.covers(ip, port):
                    return rule.id
        except ValueError:  # no original destination (SO_ORIGINAL_DST failed)
            pass
        return "tls_mitm"

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        src = f"{peer[0]}:{peer[1]}"
        try:
            raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port, packed = struct.unpack("!2xH4s8x", raw)
            dst_ip = socket.inet_ntoa(packed)
        except OSError:
            dst_ip, port = "?", 0
        dst = f"{dst_ip}:{port}"
        rule = self._rule_for(dst_ip, port)
        self._sni.name = ""
        conn.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self._default.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            self._log(rule, "intercepted, certificate refused by the client", src, dst,
                      f"{self._sni.name} ({reason})")  # fmt: skip
            conn.close()
            return
        try:
            self._log(rule, "intercepted, handshake completed", src, dst, self._sni.name)
            with contextlib.suppress(OSError, ssl.SSLError):
                tls.recv(65536)
                tls.sendall(PAGE)
        finally:
            with contextlib.suppress(OSError):
                tls.close()
