"""The TLS driver against misbehaving loopback peers: each failure class at its step."""

from __future__ import annotations

import base64

import trustme
from cryptography import x509
from peers import Site, closed_port, fin_after_hello, rst_after_hello, silent, tcp_server

from didban.net import tcp, tls
from didban.net.trace import EventLog


async def test_rst_after_client_hello_is_connection_reset(ca_file: str) -> None:
    server, port = await tcp_server(rst_after_hello)
    log = EventLog()
    tcp_r, tls_r = await tls.connect_tls(
        "127.0.0.1", port, server_name="blocked.test", tracer=log.flow(), ca_file=ca_file
    )
    server.close()
    assert tcp_r.failure is None
    assert tls_r is not None and tls_r.failure == "connection_reset"
    assert tls_r.record.peer_certificates is None
    ops = [(e.operation, e.failure) for e in log.events]
    assert ("tls_handshake_done", "connection_reset") in ops
    assert ops[0] == ("connect", None)


async def test_fin_after_client_hello_is_eof_error(ca_file: str) -> None:
    server, port = await tcp_server(fin_after_hello)
    _, tls_r = await tls.connect_tls("127.0.0.1", port, server_name="blocked.test", ca_file=ca_file)
    server.close()
    assert tls_r is not None and tls_r.failure == "eof_error"


async def test_silent_server_is_generic_timeout(ca_file: str) -> None:
    server, port = await tcp_server(silent)
    _, tls_r = await tls.connect_tls(
        "127.0.0.1",
        port,
        server_name="blocked.test",
        ca_file=ca_file,
        tls_timeout=0.3,
    )
    server.close()
    assert tls_r is not None and tls_r.failure == "generic_timeout_error"


async def test_refused_connect() -> None:
    log = EventLog()
    tcp_r, tls_r = await tls.connect_tls(
        "127.0.0.1", closed_port(), server_name="x.test", tracer=log.flow()
    )
    assert tls_r is None
    assert tcp_r.failure == "connection_refused"
    assert tcp_r.record.status.success is False
    assert log.events[0].operation == "connect"
    assert log.events[0].failure == "connection_refused"


async def test_valid_handshake_negotiates_h2(site: Site, ca_file: str) -> None:
    _, tls_r = await tls.connect_tls(
        "127.0.0.1", site.https_port, server_name="site.test", ca_file=ca_file
    )
    assert tls_r is not None and tls_r.failure is None and tls_r.stream is not None
    assert tls_r.record.negotiated_protocol == "h2"
    assert tls_r.record.tls_version == "TLSv1.3"
    assert tls_r.record.cipher_suite
    assert tls_r.record.peer_certificates
    tls_r.stream.close()


async def test_wrong_hostname_keeps_chain(site: Site, ca_file: str) -> None:
    _, tls_r = await tls.connect_tls(
        "127.0.0.1",
        site.https_port,
        server_name="www.instagram.com",
        ca_file=ca_file,
    )
    assert tls_r is not None
    assert tls_r.failure == "ssl_invalid_hostname"
    assert tls_r.record.x_didban_verify_code == 62
    assert tls_r.stream is None
    certs = tls_r.record.peer_certificates or []
    assert certs, "the chain must be kept when verification fails"
    leaf = x509.load_der_x509_certificate(base64.b64decode(certs[0].data))
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "site.test" in san.get_values_for_type(x509.DNSName)
    # the handshake itself completed: version and cipher are recorded
    assert tls_r.record.tls_version.startswith("TLS")


async def test_untrusted_ca_is_unknown_authority(site: Site, tmp_path: object) -> None:
    other = trustme.CA()
    path = f"{tmp_path}/other.pem"
    other.cert_pem.write_to_path(path)
    _, tls_r = await tls.connect_tls(
        "127.0.0.1", site.https_port, server_name="site.test", ca_file=path
    )
    assert tls_r is not None
    assert tls_r.failure == "ssl_unknown_authority"
    assert tls_r.record.x_didban_verify_code == 20
    assert tls_r.record.peer_certificates


async def test_no_verify_records_outcome_without_failing(site: Site, tmp_path: object) -> None:
    other = trustme.CA()
    path = f"{tmp_path}/other.pem"
    other.cert_pem.write_to_path(path)
    _, tls_r = await tls.connect_tls(
        "127.0.0.1",
        site.https_port,
        server_name="site.test",
        ca_file=path,
        verify_peer=False,
    )
    assert tls_r is not None and tls_r.failure is None and tls_r.stream is not None
    assert tls_r.record.no_tls_verify is True
    assert tls_r.record.x_didban_verify_code == 20
    tls_r.stream.close()


async def test_tcp_connect_record_fields() -> None:
    server, port = await tcp_server(silent)
    r = await tcp.connect("127.0.0.1", port, tracer=EventLog().flow(["depth=0"]))
    server.close()
    assert r.record.status.success and r.failure is None
    assert r.record.ip == "127.0.0.1" and r.record.port == port
    assert r.record.tags == ["depth=0"]
    assert r.record.t >= r.record.t0 >= 0
    assert r.stream is not None
    r.stream.close()
