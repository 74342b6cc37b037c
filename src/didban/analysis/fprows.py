"""The rows of ``data/fingerprints.yaml`` as msgspec Structs: its schema, nothing else.

Kept apart from the matching (``fingerprints.py``, compiled with mypyc): msgspec reads a
Struct's field types from its class, which a mypyc-compiled module does not keep.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Kind = Literal["dns", "body", "header"]
PatternType = Literal["full", "prefix", "contains", "regexp"]


class Fingerprint(msgspec.Struct, frozen=True):
    id: str
    kind: Kind
    pattern_type: PatternType
    pattern: str
    source: str
    country: str | None = None
    header: str | None = None
    scope: str | None = None
    confidence: float = 1.0
    anchor: str | None = None


class FingerprintFile(msgspec.Struct):
    fingerprints: list[Fingerprint]
    server_side: list[Fingerprint]
