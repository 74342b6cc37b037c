"""Loopback peers for the probe tests: an HTTPS site with DoH and an injecting UDP
resolver on 127.0.0.1 (the fixtures in conftest.py start and stop them, and the helper)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import dns.message
import dns.rrset

from didban.probe.config import ProbeConfig

PAGE = (
    b"<!DOCTYPE html><html><head><title>didban loopback site</title></head>"
    b"<body><h1>hello</h1><p>served on loopback</p></body></html>"
)


def _answer(query: bytes, ip: str) -> bytes:
    q = dns.message.from_wire(query)
    r = dns.message.make_response(q)
    name = q.question[0].name
    if q.question[0].rdtype == 1:  # A
        r.answer.append(dns.rrset.from_text(name, 60, "IN", "A", ip))
    return r.to_wire()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Addresses /whoami reports as "the visitor's" (the tests put the host's own there, as
    # a site that echoes its visitor's public address would).
    echo: str = ""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/old":
            self._send(302, b"", {"Location": "/"})
        elif self.path.startswith("/to/"):  # a redirect to another port of localhost
            self._send(302, b"", {"Location": f"https://localhost:{self.path[4:]}/"})
        elif self.path == "/":
            self._send(
                200,
                PAGE,
                {
                    "Content-Type": "text/html; charset=utf-8",
                    # a header that echoes the client's address, as some proxies do
                    "X-Seen-From": self.client_address[0],
                },
            )
        elif self.path == "/whoami":
            body = f"<html><title>whoami</title><p>Your address: {self.echo}</p></html>"
            self._send(200, body.encode(), {"Content-Type": "text/html", "X-Your-Ip": self.echo})
        elif self.path == "/slow":
            time.sleep(3)
            self._send(200, PAGE, {"Content-Type": "text/html; charset=utf-8"})
        else:
            self._send(404, b"not found", {"Content-Type": "text/plain"})

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        if self.path != "/dns-query":
            self._send(404, b"", {})
            return
        self._send(200, _answer(body, "127.0.0.1"), {"Content-Type": "application/dns-message"})


@dataclass
class Loopback:
    ca_file: str
    https_port: int
    dns_inject_port: int  # answers 127.0.0.2 first, then the genuine 127.0.0.1
    dns_plain_port: int
    control_url: str | None

    @property
    def doh_url(self) -> str:
        return f"https://localhost:{self.https_port}/dns-query"

    def url(self, path: str = "/") -> str:
        return f"https://localhost:{self.https_port}{path}"

    def web_config(self, udp_port: int) -> ProbeConfig:
        """Web Connectivity against these peers, asking the UDP resolver on ``udp_port``
        (``dns_plain_port`` or ``dns_inject_port``)."""
        return ProbeConfig(
            udp_resolver=("127.0.0.1", udp_port),
            doh_url=self.doh_url,
            doh_bootstrap=f"127.0.0.1:{self.https_port}",
            control_url=self.control_url,
            ca_file=self.ca_file,
            tcp_timeout=3,
            tls_timeout=3,
            http_timeout=5,
            control_timeout=10,
        )


def udp_dns(inject: bool, stop: threading.Event) -> tuple[int, threading.Thread]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = s.recvfrom(4096)
            except TimeoutError:
                continue
            if inject:
                s.sendto(_answer(data, "127.0.0.2"), peer)
                time.sleep(0.02)
            s.sendto(_answer(data, "127.0.0.1"), peer)
        s.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return s.getsockname()[1], t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
