"""What a recorded TLS peer certificate says, for a verdict's evidence: who issued it and
for which names (OONI ``peer_certificates``: base64 DER, leaf first).

Read only when a rule needs it (a certificate that failed verification), so the common
path never parses X.509.
"""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from cryptography.x509.oid import NameOID

from didban.analysis.records import Binary


def _name(n: x509.Name) -> str:
    for oid in (NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME):
        attrs = n.get_attributes_for_oid(oid)
        if attrs:
            value = attrs[0].value
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return n.rfc4514_string() or "(no name)"


def describe_leaf(certs: list[Binary] | None) -> str | None:
    """``issued by <issuer> for <names>`` (at most 300 characters) for the leaf
    certificate, or None when it is absent or unreadable."""
    if not certs:
        return None
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(certs[0].data, validate=True))
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            names = san.value.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            names = []
        subject = ", ".join(names[:3]) or _name(cert.subject)
        text = f"issued by {_name(cert.issuer)} for {subject}"
    except (binascii.Error, ValueError):  # bad base64, DER or ASN.1 anywhere in it
        return None
    return text[:300]
