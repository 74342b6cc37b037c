"""Blocking fingerprints (``data/fingerprints.yaml``): loading, validation and matching.

Two tables: censor artefacts (DNS answers, blockpage bodies and headers) that confirm
blocking, and server-side pages (CAPTCHAs, bot challenges) that are *not* censorship.
Body patterns are checked with ``str`` substring search (C speed); a regexp row runs its
regexp only when its literal ``anchor`` is present.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import msgspec
import yaml

from didban.analysis.httpdiff import b64text
from didban.data import path

Kind = Literal["dns", "body", "header"]
PatternType = Literal["full", "prefix", "contains", "regexp"]


class Fingerprint(msgspec.Struct, frozen=True):
    """One row of ``data/fingerprints.yaml``."""

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
    """The whole file: censor artefacts and server-side pages."""

    fingerprints: list[Fingerprint]
    server_side: list[Fingerprint]


@dataclass(slots=True)
class Match:
    """A fingerprint that matched, and the text it matched in."""

    fingerprint: Fingerprint
    excerpt: str


def _check(fp: Fingerprint) -> None:
    if fp.kind == "header" and not fp.header:
        raise ValueError(f"fingerprint {fp.id}: kind header needs a header name")
    if fp.kind == "dns" and fp.pattern_type != "full":
        raise ValueError(f"fingerprint {fp.id}: DNS fingerprints must be pattern_type full")
    if fp.pattern_type == "regexp":
        re.compile(fp.pattern)
        if fp.kind == "body" and not fp.anchor:
            raise ValueError(f"fingerprint {fp.id}: a body regexp needs an anchor literal")


class _Table:
    """One table's fingerprints, indexed for fast matching."""

    def __init__(self, rows: list[Fingerprint]) -> None:
        for fp in rows:
            _check(fp)
        self.rows = tuple(rows)
        self.dns = {fp.pattern.lower(): fp for fp in rows if fp.kind == "dns"}
        # body rows: the literal searched for (a regexp row's anchor) and the regexp
        self.body = [
            (
                fp,
                fp.anchor or fp.pattern,
                re.compile(fp.pattern) if fp.pattern_type == "regexp" else None,
            )
            for fp in rows
            if fp.kind == "body"
        ]
        self.headers: dict[str, list[Fingerprint]] = {}
        for fp in rows:
            if fp.kind == "header" and fp.header:
                self.headers.setdefault(fp.header.lower(), []).append(fp)

    def match_dns(self, value: str | None) -> Fingerprint | None:
        if not value:
            return None
        return self.dns.get(value.lower().rstrip("."))

    def match_body(self, body: str) -> Match | None:
        """The first body row (in file order) found in ``body``."""
        if not body:
            return None
        for fp, literal, regexp in self.body:
            at = body.find(literal)
            if at < 0:
                continue
            end = at + len(literal)
            if regexp is not None:
                m = regexp.search(body)
                if m is None:
                    continue
                at, end = m.start(), m.end()
            elif not _placed(fp.pattern_type, at, body, literal):
                continue
            return Match(fp, body[max(0, at - 60) : end + 60])
        return None

    def match_headers(self, headers: Headers | None) -> Match | None:
        """The first header (in response order) matching a header row of this table; the
        headers as ``header_map`` gives them."""
        if not headers:
            return None
        for lname, (name, value) in headers.items():
            candidates = self.headers.get(lname)
            if not candidates:
                continue
            text = header_text(value)
            for fp in candidates:
                if _matches(fp, text):
                    return Match(fp, f"{name}: {text[:200]}")
        return None


# Response headers as the rules read them: lower-cased name -> (name as sent, raw value), in
# response order (the first of two spellings of one name, "Location" and "location", kept).
Headers = dict[str, tuple[str, Any]]


def header_map(headers: dict[str, Any] | None) -> Headers | None:
    """``headers`` (a decoded OONI headers map) keyed by lower-cased name."""
    if headers is None:
        return None
    out: Headers = {}
    for name, v in headers.items():
        lname = name.lower()
        if lname not in out:
            out[lname] = (name, v)
    return out


def header_text(value: Any) -> str:
    """A header value as text: OONI stores some as base64 MaybeBinaryData or as lists."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        return header_text(value[0])
    if isinstance(value, dict) and isinstance(value.get("data"), str):
        return b64text(value["data"])
    return "" if value is None else str(value)


def _placed(pattern_type: str, at: int, text: str, literal: str) -> bool:
    """Whether a literal found at ``at`` satisfies a prefix/full pattern type."""
    if pattern_type == "prefix":
        return at == 0
    if pattern_type == "full":
        return text == literal
    return True


def _matches(fp: Fingerprint, text: str) -> bool:
    if fp.pattern_type == "full":
        return text == fp.pattern
    if fp.pattern_type == "prefix":
        return text.startswith(fp.pattern)
    if fp.pattern_type == "contains":
        return fp.pattern in text
    return re.search(fp.pattern, text) is not None


class Fingerprints:
    """Both tables of a fingerprint file."""

    def __init__(self, blocking: list[Fingerprint], server_side: list[Fingerprint]) -> None:
        ids = [fp.id for fp in blocking + server_side]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"duplicate fingerprint ids: {sorted(dupes)}")
        self.blocking = _Table(blocking)
        self.server_side = _Table(server_side)

    @classmethod
    def from_yaml(cls, text: str) -> Fingerprints:
        parsed = msgspec.convert(yaml.safe_load(text), FingerprintFile)
        return cls(parsed.fingerprints, parsed.server_side)


@lru_cache(maxsize=1)
def default() -> Fingerprints:
    """The fingerprints shipped in ``didban/data/fingerprints.yaml``."""
    return Fingerprints.from_yaml(path("fingerprints.yaml").read_text(encoding="utf-8"))
