"""Certificate-chain verification done apart from the handshake, with OpenSSL-style codes.

The TLS driver handshakes with ``CERT_NONE`` and hands the presented chain here, so the
chain is kept even when it does not verify. Verification uses ``cryptography``'s X.509
verifier (python-stack.md §6) with the CA/Browser-Forum end-entity rules relaxed (test
CAs such as trustme mark subjectAltName critical); the outcome is reported with the
OpenSSL ``X509_V_ERR_*`` code OONI's mapping is keyed on, checked in OpenSSL's order:
trust (20 / 18 / 19), validity period (10 / 9), then the host name (62).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.x509 import verification as xv

# OpenSSL X509_V_ERR_* codes.
UNSPECIFIED = 1
CERT_NOT_YET_VALID = 9
CERT_HAS_EXPIRED = 10
DEPTH_ZERO_SELF_SIGNED = 18
SELF_SIGNED_IN_CHAIN = 19
UNABLE_TO_GET_ISSUER_LOCALLY = 20
HOSTNAME_MISMATCH = 62


@dataclass(frozen=True)
class VerifyOutcome:
    """Why a chain does not verify: OpenSSL code and a human-readable message."""

    code: int
    message: str


def default_ca_file() -> str | None:
    """The system roots: ``SSL_CERT_FILE`` if set, else OpenSSL's default CA file."""
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get(paths.openssl_cafile_env), paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


@lru_cache(maxsize=16)
def _load_store(path: str, mtime: float) -> xv.Store | None:
    with open(path, "rb") as fh, warnings.catch_warnings():
        # some system roots have non-positive serial numbers; cryptography warns about them
        warnings.simplefilter("ignore")
        roots = x509.load_pem_x509_certificates(fh.read())
    return xv.Store(roots) if roots else None


def load_store(ca_file: str | None) -> xv.Store | None:
    """A store of the roots in ``ca_file`` (PEM bundle) or the system default; None if none."""
    path = ca_file or default_ca_file()
    if path is None:
        return None
    try:
        return _load_store(path, os.stat(path).st_mtime)
    except (OSError, ValueError):
        return None


def _builder(store: xv.Store, now: dt.datetime) -> xv.PolicyBuilder:
    ee = xv.ExtensionPolicy.permit_all().require_present(
        x509.SubjectAlternativeName, xv.Criticality.AGNOSTIC, None
    )
    return (
        xv.PolicyBuilder()
        .store(store)
        .time(now)
        .extension_policies(ca_policy=xv.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
    )


def _subject(name: str) -> x509.DNSName | x509.IPAddress:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _own_name(leaf: x509.Certificate) -> x509.DNSName | x509.IPAddress | None:
    """A subject the leaf certainly matches (its first SAN), to test trust alone."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for dns_name in san.get_values_for_type(x509.DNSName):
        try:
            return x509.DNSName(dns_name.replace("*.", "wildcard.", 1))
        except ValueError:
            continue
    for ip in san.get_values_for_type(x509.IPAddress):
        return x509.IPAddress(ip)
    return None


def _period_problem(certs: Sequence[x509.Certificate], now: dt.datetime) -> VerifyOutcome | None:
    for cert in certs:
        if now > cert.not_valid_after_utc:
            return VerifyOutcome(CERT_HAS_EXPIRED, "certificate has expired")
        if now < cert.not_valid_before_utc:
            return VerifyOutcome(CERT_NOT_YET_VALID, "certificate is not yet valid")
    return None


def verify_chain(
    chain: Sequence[bytes],
    server_name: str,
    *,
    ca_file: str | None = None,
    now: dt.datetime | None = None,
) -> VerifyOutcome | None:
    """None if ``chain`` (DER, leaf first) is valid for ``server_name``, else why not.

    ``server_name`` "" skips the host-name check (no SNI was sent).
    """
    if not chain:
        return VerifyOutcome(UNSPECIFIED, "the server presented no certificate")
    try:
        certs = [x509.load_der_x509_certificate(c) for c in chain]
    except ValueError as exc:
        return VerifyOutcome(UNSPECIFIED, f"unparsable certificate: {exc}")
    leaf, rest = certs[0], certs[1:]
    when = now or dt.datetime.now(dt.UTC)
    store = load_store(ca_file)
    own = _own_name(leaf)
    if store is None or own is None:
        trusted = False
        reason = "no trusted roots" if store is None else "the certificate has no subjectAltName"
    else:
        try:
            _builder(store, when).build_server_verifier(own).verify(leaf, rest)
            trusted = True
            reason = ""
        except xv.VerificationError as exc:
            trusted = False
            reason = str(exc)
    if not trusted:
        period = _period_problem(certs, when)
        if period is not None and "candidates exhausted" not in reason:
            return period
        if leaf.issuer == leaf.subject and len(certs) == 1:
            return VerifyOutcome(DEPTH_ZERO_SELF_SIGNED, f"self-signed certificate ({reason})")
        if any(c.issuer == c.subject for c in rest):
            return VerifyOutcome(
                SELF_SIGNED_IN_CHAIN, f"self-signed certificate in certificate chain ({reason})"
            )
        return VerifyOutcome(
            UNABLE_TO_GET_ISSUER_LOCALLY, f"unable to get local issuer certificate ({reason})"
        )
    if not server_name or store is None:
        return None
    try:
        subject = _subject(server_name)
    except ValueError:
        return VerifyOutcome(HOSTNAME_MISMATCH, f"invalid server name {server_name!r}")
    try:
        _builder(store, when).build_server_verifier(subject).verify(leaf, rest)
    except xv.VerificationError as exc:
        return VerifyOutcome(HOSTNAME_MISMATCH, f"hostname mismatch for {server_name!r}: {exc}")
    return None
