"""Chain verification apart from the handshake: OpenSSL codes in OpenSSL's order."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from didban.net import errors, verify


def _der_chain(leaf: trustme.LeafCert) -> list[bytes]:
    return [
        x509.load_pem_x509_certificate(b.bytes()).public_bytes(serialization.Encoding.DER)
        for b in leaf.cert_chain_pems
    ]


def _ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def test_valid_and_wildcard(tmp_path: Path) -> None:
    ca = trustme.CA()
    chain = _der_chain(ca.issue_cert("*.example.test"))
    ca_file = _ca_file(ca, tmp_path)
    assert verify.verify_chain(chain, "www.example.test", ca_file=ca_file) is None
    out = verify.verify_chain(chain, "example.test", ca_file=ca_file)
    assert out is not None and out.code == 62
    assert errors.verify_code_failure(out.code) == "ssl_invalid_hostname"


def test_expired_is_invalid_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    leaf = ca.issue_cert("old.test", not_before=old, not_after=old + dt.timedelta(days=30))
    out = verify.verify_chain(_der_chain(leaf), "old.test", ca_file=_ca_file(ca, tmp_path))
    assert out is not None and out.code == 10
    assert errors.verify_code_failure(out.code) == "ssl_invalid_certificate"


def test_untrusted_wins_over_hostname(tmp_path: Path) -> None:
    ca, other = trustme.CA(), trustme.CA()
    out = verify.verify_chain(
        _der_chain(ca.issue_cert("a.test")), "b.test", ca_file=_ca_file(other, tmp_path)
    )
    assert out is not None and out.code == 20


def test_self_signed_leaf_is_18(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("self.test")]), False)
        .sign(key, hashes.SHA256())
    )
    ca_file = _ca_file(trustme.CA(), tmp_path)
    out = verify.verify_chain(
        [cert.public_bytes(serialization.Encoding.DER)], "self.test", ca_file=ca_file
    )
    assert out is not None and out.code == 18
    assert errors.verify_code_failure(out.code) == "ssl_unknown_authority"


def test_no_certificate() -> None:
    out = verify.verify_chain([], "x.test")
    assert out is not None and errors.verify_code_failure(out.code) == "ssl_invalid_certificate"


def test_cached_chain_still_checks_each_name_and_a_new_ca_file(tmp_path: Path) -> None:
    ca = trustme.CA()
    chain = _der_chain(ca.issue_cert("*.bench.test", "10.0.0.7"))
    ca_file = _ca_file(ca, tmp_path)
    for name in ("site1.bench.test", "SITE2.bench.test.", "10.0.0.7"):
        assert verify.verify_chain(chain, name, ca_file=ca_file) is None, name
    for name in ("a.site1.bench.test", "bench.test", "xbench.test", "10.0.0.8"):
        out = verify.verify_chain(chain, name, ca_file=ca_file)
        assert out is not None and out.code == 62, name
    # the CA file now holds another root: the cached trust must not be reused
    other = trustme.CA()
    other.cert_pem.write_to_path(ca_file)
    stat = Path(ca_file).stat()
    os.utime(ca_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    out = verify.verify_chain(chain, "site1.bench.test", ca_file=ca_file)
    assert out is not None and out.code == 20
