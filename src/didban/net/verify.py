"""Certificate-chain verification done apart from the handshake, with OpenSSL-style codes.

The TLS driver handshakes with ``CERT_NONE`` and hands the presented chain here, so the
chain is kept even when it does not verify. Verification uses ``cryptography``'s X.509
verifier (python-stack.md §6) with the CA/Browser-Forum end-entity rules relaxed (test
CAs such as trustme mark subjectAltName critical); the outcome is reported with the
OpenSSL ``X509_V_ERR_*`` code OONI's mapping is keyed on, checked in OpenSSL's order:
trust (20 / 18 / 19), validity period (10 / 9), then the host name (62). ``judge`` turns
the outcome into the handshake's OONI failure, for the TLS driver and QUIC alike.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.x509 import verification

from didban.net import errors

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
def _load_store(path: str, mtime: float) -> verification.Store | None:
    with open(path, "rb") as fh, warnings.catch_warnings():
        # some system roots have non-positive serial numbers; cryptography warns about them
        warnings.simplefilter("ignore")
        roots = x509.load_pem_x509_certificates(fh.read())
    return verification.Store(roots) if roots else None


def ca_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot serve as a CA bundle (one sentence naming it), or None.

    A bundle with no certificate in it would make every handshake look untrusted
    (``ssl_unknown_authority``), i.e. false interception evidence, so it is refused up
    front rather than measured with."""
    if not os.path.isfile(path):
        return f"--ca-file {path} is not a readable file"
    try:
        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            roots = x509.load_pem_x509_certificates(fh.read())
    except OSError as exc:
        return f"--ca-file {path} cannot be read: {exc.strerror or exc}"
    except ValueError:
        roots = []
    if not roots:
        return f"--ca-file {path} holds no PEM certificate"
    return None


def load_store(ca_file: str | None) -> verification.Store | None:
    """A store of the roots in ``ca_file`` (PEM bundle) or the system default; None if none."""
    path = ca_file or default_ca_file()
    if path is None:
        return None
    try:
        return _load_store(path, os.stat(path).st_mtime)
    except (OSError, ValueError):
        return None


def _builder(store: verification.Store, now: dt.datetime) -> verification.PolicyBuilder:
    ee = verification.ExtensionPolicy.permit_all().require_present(
        x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None
    )
    return (
        verification.PolicyBuilder()
        .store(store)
        .time(now)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee
        )
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


@dataclass(frozen=True)
class _ChainFacts:
    """What a chain proves whatever name is asked: trust (None = trusted for its own
    subjectAltName), its names, and the time range those facts hold for."""

    trust: VerifyOutcome | None
    dns_names: tuple[str, ...]
    ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]
    constrained: bool  # a CA of the chain has name constraints: check names in full
    start: dt.datetime
    end: dt.datetime
    certs: tuple[x509.Certificate, ...]


# (chain, CA file, its mtime) → facts; bounded, least recently used dropped first.
_CACHE_SIZE = 4096
_chains: OrderedDict[tuple[tuple[bytes, ...], str | None, float], _ChainFacts] = OrderedDict()


def _store_key(ca_file: str | None) -> tuple[str | None, float]:
    path = ca_file or default_ca_file()
    try:
        return path, os.stat(path).st_mtime if path else 0.0
    except OSError:
        return path, -1.0


def judge(
    chain: Sequence[bytes], server_name: str, *, ca_file: str | None, verify_peer: bool
) -> tuple[int | None, str | None, str | None]:
    """For a completed handshake (TLS or QUIC): the verify code and message of ``chain``
    (None, None when it is valid) and the OONI failure they mean — None when the chain is
    valid, or when ``verify_peer`` is off (OONI ``no_tls_verify``: only recorded)."""
    outcome = verify_chain(chain, server_name, ca_file=ca_file)
    if outcome is None:
        return None, None, None
    failure = errors.verify_code_failure(outcome.code) if verify_peer else None
    return outcome.code, outcome.message, failure


def verify_chain(
    chain: Sequence[bytes],
    server_name: str,
    *,
    ca_file: str | None = None,
    now: dt.datetime | None = None,
) -> VerifyOutcome | None:
    """None if ``chain`` (DER, leaf first) is valid for ``server_name``, else why not.

    ``server_name`` "" skips the host-name check (no SNI was sent). The chain's trust is
    verified once per (chain, CA file) and cached for as long as every certificate stays
    inside its validity period; the host name is then matched against the leaf's
    subjectAltName (RFC 6125 §6.4: exact, or a wildcard as the whole left-most label), so
    a run meeting one wildcard certificate for many names verifies the chain once.
    """
    if not chain:
        return VerifyOutcome(UNSPECIFIED, "the server presented no certificate")
    when = now or dt.datetime.now(dt.UTC)
    path, mtime = _store_key(ca_file)
    key = (tuple(chain), path, mtime)
    facts = _chains.get(key)
    if facts is not None and facts.start <= when <= facts.end:
        _chains.move_to_end(key)
    else:
        try:
            certs = [x509.load_der_x509_certificate(c) for c in chain]
        except ValueError as exc:
            return VerifyOutcome(UNSPECIFIED, f"unparsable certificate: {exc}")
        facts = _facts(certs, ca_file, when)
        if facts.start <= when <= facts.end:  # outside it the outcome depends on the time
            _chains[key] = facts
            if len(_chains) > _CACHE_SIZE:
                _chains.popitem(last=False)
    if facts.trust is not None:
        return facts.trust
    if not server_name:
        return None
    if facts.constrained:
        return _name_in_full(facts.certs, server_name, ca_file, when)
    if _name_matches(server_name, facts):
        return None
    return VerifyOutcome(
        HOSTNAME_MISMATCH,
        f"hostname mismatch for {server_name!r}: not among the certificate's subjectAltName",
    )


def _name_matches(name: str, facts: _ChainFacts) -> bool:
    try:
        return ipaddress.ip_address(name) in facts.ips
    except ValueError:
        pass
    name = name.lower().rstrip(".")
    first, _, rest = name.partition(".")
    for pattern in facts.dns_names:
        if pattern == name:
            return True
        if pattern.startswith("*.") and first and rest and rest == pattern[2:]:
            return True
    return False


def _facts(
    certs: Sequence[x509.Certificate], ca_file: str | None, when: dt.datetime
) -> _ChainFacts:
    leaf = certs[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = tuple(n.lower().rstrip(".") for n in san.get_values_for_type(x509.DNSName))
        ips = tuple(
            ip
            for ip in san.get_values_for_type(x509.IPAddress)
            if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address))
        )
    except x509.ExtensionNotFound:
        dns_names, ips = (), ()
    constrained = False
    for cert in certs[1:]:
        try:
            cert.extensions.get_extension_for_class(x509.NameConstraints)
            constrained = True
        except x509.ExtensionNotFound:
            pass
    return _ChainFacts(
        trust=_trust(certs, ca_file, when),
        dns_names=dns_names,
        ips=ips,
        constrained=constrained,
        start=max(c.not_valid_before_utc for c in certs),
        end=min(c.not_valid_after_utc for c in certs),
        certs=tuple(certs),
    )


def _trust(
    certs: Sequence[x509.Certificate], ca_file: str | None, when: dt.datetime
) -> VerifyOutcome | None:
    """None if the chain is trusted (verified for a name it certainly carries), else
    the OpenSSL-style reason, checked in OpenSSL's order (trust, then validity)."""
    leaf, rest = certs[0], list(certs[1:])
    store = load_store(ca_file)
    own = _own_name(leaf)
    if store is None or own is None:
        reason = "no trusted roots" if store is None else "the certificate has no subjectAltName"
    else:
        try:
            _builder(store, when).build_server_verifier(own).verify(leaf, rest)
            return None
        except verification.VerificationError as exc:
            reason = str(exc)
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


def _name_in_full(
    certs: Sequence[x509.Certificate], server_name: str, ca_file: str | None, when: dt.datetime
) -> VerifyOutcome | None:
    """The host-name check by the full verifier (chains with name-constrained CAs)."""
    store = load_store(ca_file)
    if store is None:
        return None
    try:
        subject = _subject(server_name)
    except ValueError:
        return VerifyOutcome(HOSTNAME_MISMATCH, f"invalid server name {server_name!r}")
    try:
        _builder(store, when).build_server_verifier(subject).verify(certs[0], list(certs[1:]))
    except verification.VerificationError as exc:
        return VerifyOutcome(HOSTNAME_MISMATCH, f"hostname mismatch for {server_name!r}: {exc}")
    return None
