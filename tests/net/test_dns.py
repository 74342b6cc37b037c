"""DNS over UDP (late replies kept), TCP, DoT, DoH and the system resolver on loopback."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct

import dns.message
import dns.name
import dns.rcode
import dns.rrset
import trustme
from peers import DNSServer, Site, closed_port, silent, tcp_server

from didban.net import dns as netdns
from didban.net.dns import message
from didban.net.dns.doh import DoHSession
from didban.net.tls import TLSStream
from didban.net.trace import EventLog


async def test_injected_then_genuine_both_kept_in_order() -> None:
    server = await DNSServer({"www.instagram.com": ["203.0.113.10"]}, forged="10.10.34.36").start()
    log = EventLog()
    try:
        r = await netdns.UDP(f"127.0.0.1:{server.port}").resolve(
            "www.instagram.com", tracer=log.flow()
        )
    finally:
        server.stop()
    assert r.failure is None
    assert r.addrs == ["10.10.34.36"]  # the first (forged) reply is the query result
    assert r.query.engine == "udp"
    assert r.query.resolver_address == f"127.0.0.1:{server.port}"
    assert len(r.duplicates) == 1
    dup = r.duplicates[0]
    assert [a.ipv4 for a in dup.answers or []] == ["203.0.113.10"]
    assert dup.t > r.query.t  # arrival order, with timings
    assert dup.transaction_id == r.query.transaction_id
    assert r.query.raw_response
    reads = [e for e in log.events if e.operation == "read_from"]
    assert len(reads) == 2


async def test_first_reply_is_handed_over_while_late_replies_are_awaited() -> None:
    server = await DNSServer(
        {"www.instagram.com": ["203.0.113.10"]}, forged="10.10.34.36", gap=0.2
    ).start()
    seen: list[tuple[list[str], int]] = []
    try:
        r = await netdns.UDP(
            f"127.0.0.1:{server.port}",
            on_answer=lambda first: seen.append((first.addrs, len(first.duplicates))),
        ).resolve("www.instagram.com")
    finally:
        server.stop()
    # called once, with the first (injected) reply, before the genuine one had arrived
    assert seen == [(["10.10.34.36"], 0)]
    assert r.addrs == ["10.10.34.36"]
    assert [a.ipv4 for a in r.duplicates[0].answers or []] == ["203.0.113.10"]


async def test_reply_with_wrong_id_is_kept_but_not_the_answer() -> None:
    server = await DNSServer(
        {"www.instagram.com": ["203.0.113.10"]}, forged="10.10.34.36", forged_wrong_id=True
    ).start()
    try:
        r = await netdns.UDP(f"127.0.0.1:{server.port}", wait_duplicates=0.1).resolve(
            "www.instagram.com"
        )
    finally:
        server.stop()
    assert r.addrs == ["203.0.113.10"]
    assert [d.failure for d in r.duplicates] == ["dns_reply_with_wrong_query_id"]
    assert [a.ipv4 for a in r.duplicates[0].answers or []] == ["10.10.34.36"]


async def test_every_other_reply_is_handed_over_as_it_arrives() -> None:
    server = await DNSServer(
        {"www.instagram.com": ["203.0.113.10"]}, forged="10.10.34.36", forged_wrong_id=True
    ).start()
    seen: list[tuple[str | None, list[str]]] = []
    try:
        r = await netdns.UDP(
            f"127.0.0.1:{server.port}",
            wait_duplicates=0.1,
            on_duplicate=lambda d: seen.append(
                (d.failure, [a.ipv4 or "" for a in d.answers or []])
            ),
        ).resolve("www.instagram.com")
    finally:
        server.stop()
    # the wrong-id reply came first and is not the answer, but it is handed over at once
    assert seen == [("dns_reply_with_wrong_query_id", ["10.10.34.36"])]
    assert [d.failure for d in r.duplicates] == ["dns_reply_with_wrong_query_id"]


async def test_on_answer_gets_the_failure_when_no_reply_comes_or_the_caller_gives_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:
        quiet.bind(("127.0.0.1", 0))
        server = f"127.0.0.1:{quiet.getsockname()[1]}"
        seen: list[str | None] = []
        r = await netdns.UDP(
            server, timeout=0.2, on_answer=lambda x: seen.append(x.failure)
        ).resolve("a.test")
        assert seen == ["generic_timeout_error"] and r.failure == "generic_timeout_error"
        seen.clear()
        task = asyncio.ensure_future(
            netdns.UDP(server, timeout=30, on_answer=lambda x: seen.append(x.failure)).resolve(
                "a.test"
            )
        )
        await asyncio.sleep(0.2)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the cancellation was swallowed")
        assert seen == ["generic_timeout_error"]  # exactly once, before the cancellation went on


async def test_single_reply_has_no_duplicates() -> None:
    server = await DNSServer({"a.test": ["192.0.2.7"]}).start()
    try:
        r = await netdns.UDP(f"127.0.0.1:{server.port}", wait_duplicates=0.1).resolve("a.test")
    finally:
        server.stop()
    assert r.addrs == ["192.0.2.7"] and r.duplicates == []
    assert r.query.answers is not None and r.query.answers[0].ttl == 60


async def test_nxdomain() -> None:
    server = await DNSServer({}).start()
    try:
        r = await netdns.UDP(f"127.0.0.1:{server.port}", wait_duplicates=0.05).resolve(
            "missing.test"
        )
    finally:
        server.stop()
    assert r.failure == "dns_nxdomain_error"
    assert r.query.rcode == 3


async def test_refused_and_servfail_rcodes() -> None:
    for rcode, expected in (
        (dns.rcode.REFUSED, "dns_refused_error"),
        (dns.rcode.SERVFAIL, "dns_servfail_error"),
    ):
        server = await DNSServer({}, rcode=rcode).start()
        try:
            r = await netdns.UDP(f"127.0.0.1:{server.port}", wait_duplicates=0.05).resolve("x.test")
        finally:
            server.stop()
        assert r.failure == expected


async def test_no_answer() -> None:
    server = await DNSServer({"empty.test": []}).start()
    try:
        r = await netdns.UDP(f"127.0.0.1:{server.port}", wait_duplicates=0.05).resolve("empty.test")
    finally:
        server.stop()
    assert r.failure == "dns_no_answer"


async def test_silent_udp_server_times_out() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        r = await netdns.UDP(f"127.0.0.1:{port}", timeout=0.3).resolve("a.test")
    finally:
        transport.close()
    assert r.failure == "generic_timeout_error"
    assert r.query.answers is None


def _rrset(name: dns.name.Name) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(name, 30, "IN", "A", ["198.51.100.77"])


async def _dns_stream_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    (length,) = struct.unpack("!H", await reader.readexactly(2))
    query = dns.message.from_wire(await reader.readexactly(length))
    resp = dns.message.make_response(query)
    resp.answer.append(_rrset(query.question[0].name))
    wire = resp.to_wire()
    writer.write(struct.pack("!H", len(wire)) + wire)
    await writer.drain()
    writer.close()


async def test_tcp_transport() -> None:
    server = await asyncio.start_server(_dns_stream_handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    r = await netdns.TCP(f"127.0.0.1:{port}").resolve("b.test")
    server.close()
    assert r.failure is None and r.addrs == ["198.51.100.77"]
    assert r.query.engine == "tcp"
    assert r.tcp_connect and r.tcp_connect[0].status.success


async def test_dot_transport(ca: trustme.CA, ca_file: str) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("dns.google").configure_cert(ctx)
    server = await asyncio.start_server(_dns_stream_handler, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    r = await netdns.DoT(f"127.0.0.1:{port}", "dns.google", ca_file=ca_file).resolve("b.test")
    bad = await netdns.DoT(f"127.0.0.1:{port}", "dns.quad9.net", ca_file=ca_file).resolve("b.test")
    server.close()
    assert r.failure is None and r.addrs == ["198.51.100.77"]
    assert r.query.engine == "dot"
    assert r.tls_handshakes and r.tls_handshakes[0].failure is None
    assert bad.failure == "ssl_invalid_hostname"


async def test_dot_handshake_that_stalls_is_recorded_as_a_tls_timeout() -> None:
    # Iran's DoT blocking lets the TCP handshake through and drops the ClientHello: the
    # lookup's record must show the TCP connect working and the TLS step timing out.
    server, port = await tcp_server(silent)
    try:
        r = await netdns.DoT(f"127.0.0.1:{port}", "dns.google", timeout=0.3).resolve("b.test")
    finally:
        server.close()
    assert r.failure == "generic_timeout_error"
    assert [c.status.success for c in r.tcp_connect] == [True]
    assert [h.failure for h in r.tls_handshakes] == ["generic_timeout_error"]


async def test_doh_handshake_that_stalls_is_recorded_as_a_tls_timeout() -> None:
    server, port = await tcp_server(silent)
    try:
        r = await netdns.DoH(
            "https://dns.google/dns-query", f"127.0.0.1:{port}", timeout=0.3
        ).resolve("c.test")
    finally:
        server.close()
    assert r.failure == "generic_timeout_error"
    assert [c.status.success for c in r.tcp_connect] == [True]
    assert [h.failure for h in r.tls_handshakes] == ["generic_timeout_error"]


class DoHSite(Site):
    def respond(
        self, method: str, path: str, body: bytes, headers: list[tuple[str, str]]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if path != "/dns-query" or method != "POST":
            return 404, [], b""
        query = dns.message.from_wire(body)
        resp = dns.message.make_response(query)
        resp.answer.append(_rrset(query.question[0].name))
        return 200, [("Content-Type", "application/dns-message")], resp.to_wire()


async def test_doh_transport(ca: trustme.CA, ca_file: str) -> None:
    site = await DoHSite(ca, names=("dns.google",)).start()
    try:
        r = await netdns.DoH(
            "https://dns.google/dns-query", f"127.0.0.1:{site.https_port}", ca_file=ca_file
        ).resolve("c.test")
    finally:
        await site.stop()
    assert r.failure is None, r
    assert r.addrs == ["198.51.100.77"]
    assert r.query.engine == "doh"
    assert r.query.resolver_address == "https://dns.google/dns-query"
    assert r.tls_handshakes[0].negotiated_protocol == "h2"


async def test_doh_refused() -> None:
    r = await netdns.DoH("https://dns.google/dns-query", f"127.0.0.1:{closed_port()}").resolve(
        "c.test"
    )
    assert r.failure == "connection_refused"


async def test_system_resolver_localhost() -> None:
    r = await netdns.System().resolve("localhost")
    assert r.failure is None
    assert r.query.engine == "getaddrinfo" and r.query.query_type == "ANY"
    assert r.query.resolver_address == ""
    assert "127.0.0.1" in r.addrs or "::1" in r.addrs


async def test_system_resolver_nxdomain() -> None:
    r = await netdns.System().resolve("no-such-host.invalid")
    assert r.failure in ("dns_nxdomain_error", "dns_temporary_failure")


async def test_doh_session_multiplexes_lookups_on_one_connection(
    ca: trustme.CA, ca_file: str
) -> None:
    site = await DoHSite(ca, names=("dns.google",)).start()
    url, boot = "https://dns.google/dns-query", f"127.0.0.1:{site.https_port}"
    session = DoHSession(url, boot, ca_file=ca_file)
    doh = netdns.DoH(url, boot, ca_file=ca_file, session=session)
    try:
        first = await doh.resolve("a.test")
        rest = await asyncio.gather(*(doh.resolve(f"n{i}.test") for i in range(20)))
    finally:
        session.close()
        await site.stop()
    # the first lookup opened the connection and recorded it, with its exchange
    assert first.failure is None and first.addrs == ["198.51.100.77"]
    assert not first.reused_connection
    assert len(first.tcp_connect) == 1 and first.tls_handshakes[0].negotiated_protocol == "h2"
    assert [(t.request.method, t.response.code, t.alpn) for t in first.requests] == [
        ("POST", 200, "h2")
    ]
    # twenty concurrent lookups then shared it: no new connection, one exchange each
    for r in rest:
        assert r.failure is None and r.addrs == ["198.51.100.77"]
        assert r.reused_connection and r.tcp_connect == [] and r.tls_handshakes == []
        assert len(r.requests) == 1 and r.requests[0].response.code == 200
    assert len(site.paths) == 21


async def test_doh_timeout_keeps_the_tcp_connect_it_made() -> None:
    server, port = await tcp_server(silent)  # accepts, then never answers the ClientHello
    try:
        r = await netdns.DoH(
            "https://dns.google/dns-query", f"127.0.0.1:{port}", timeout=0.5
        ).resolve("c.test")
    finally:
        server.close()
    assert r.failure == "generic_timeout_error"
    assert [c.status.success for c in r.tcp_connect] == [True]


def test_query_wire_is_what_dnspython_builds() -> None:
    for name, qtype in (("www.example.com", "A"), ("xn--mgbai9azgqp6j.ir.", "AAAA")):
        ours = message.make_query(name, qtype)
        ref = dns.message.make_query(name, qtype, use_edns=0, payload=1232)
        ref.id = ours.id
        assert ours.wire == ref.to_wire()
        reply = dns.message.make_response(ref)
        reply.id = ours.id
        parsed = message.parse_reply(reply.to_wire())
        assert parsed is not None and message.matches(ours, parsed)
        reply.question[0].name = dns.name.from_text(name.upper())  # names match without case
        parsed = message.parse_reply(reply.to_wire())
        assert parsed is not None and message.matches(ours, parsed)
    assert message.make_query("a.test", "A", doh=True).id == 0


async def test_doh_session_recovers_when_its_connection_dies(ca: trustme.CA, ca_file: str) -> None:
    site = await DoHSite(ca, names=("dns.google",)).start()
    url, boot = "https://dns.google/dns-query", f"127.0.0.1:{site.https_port}"
    session = DoHSession(url, boot, ca_file=ca_file)

    async def lookup(name: str) -> netdns.DNSResult:
        return await netdns.DoH(url, boot, ca_file=ca_file, session=session).resolve(name)

    try:
        await lookup("a.test")
        assert session._conn is not None
        stream = session._conn.stream
        assert isinstance(stream, TLSStream)
        stream.raw.sock.shutdown(socket.SHUT_RDWR)  # the connection breaks
        r = await lookup("b.test")
    finally:
        session.close()
        await site.stop()
    # the lookup still gets its answer, on a new connection it records
    assert r.failure is None and r.addrs == ["198.51.100.77"]
    assert len(r.tcp_connect) == 1 and r.tcp_connect[0].status.success
    assert r.requests[0].response is not None and r.requests[0].response.code == 200
