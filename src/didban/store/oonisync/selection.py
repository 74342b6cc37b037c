"""What a sync asks for: country, hour range, tests; and where OONI's bucket keeps them.

Pure functions over data, no I/O. A ``Selection`` is parsed from the command's flags (one
clear sentence for a bad flag, raised as ``SelectionError``) and turned into the key
prefixes to list in each layout of OONI's public archive (``ooni-backend.md`` §4 and
ooni/data ``dataclient.py``):

* ``raw/<YYYYMMDD>/<HH>/<CC>/<testname>/…jsonl.gz`` — uploads from 2020-10-20 on, in
  ``ooni-data-eu-fra``; the date and hour are the *upload* hour;
* ``jsonl/<testname>/<CC>/<YYYYMMDD>/00/…jsonl.gz`` — everything before 2020-10-21,
  reprocessed by OONI into one file set per test, country and day, same bucket;
* ``canned/<YYYY-MM-DD>/<test_name>.<n>.tar.lz4`` (and single ``*.json.lz4`` reports) —
  the original daily cans: in ``ooni-data-eu-fra`` from 2020-06-02 to 2020-10-21, in the
  legacy ``ooni-data`` bucket before. A can holds every country's reports of one test.

``testname`` in keys has its underscores removed (``webconnectivity``); cans keep them.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

BUCKET: Final = "ooni-data-eu-fra"
BUCKET_REGION: Final = "eu-central-1"
LEGACY_BUCKET: Final = "ooni-data"
LEGACY_BUCKET_REGION: Final = "us-east-1"

RAW_FIRST_DAY: Final = date(2020, 10, 20)  # first day of raw/
JSONL_LAST_DAY: Final = date(2020, 10, 20)  # jsonl/ holds days before 2020-10-21
CANS_LAST_DAY: Final = date(2020, 10, 21)
NEW_CANS_FIRST_DAY: Final = date(2020, 6, 2)  # cans in ooni-data-eu-fra; before: ooni-data
FIRST_DAY: Final = date(2012, 12, 5)  # OONI's first measurements

# OONI's test names as they appear in ``test_name`` (ooni/spec nettests/ts-*.md).
TEST_NAMES: Final = (
    "bridge_reachability", "browser_web", "captive_portal", "dash", "ddr", "dns_consistency",
    "dns_injection", "dnscheck", "dnsping", "echcheck", "facebook_messenger",
    "http_header_field_manipulation", "http_host", "http_invalid_request_line",
    "http_requests", "lantern", "meek_fronted_requests_test", "multi_protocol_traceroute",
    "ndt", "openvpn", "portfiltering", "psiphon", "quicping", "riseupvpn", "shadowsocks",
    "signal", "simplequicping", "sni_blocking", "stunreachability", "tcp_connect", "tcpping",
    "telegram", "tlsmiddlebox", "tlsping", "tlstool", "tor", "torsf", "urlgetter",
    "vanilla_tor", "web_connectivity", "whatsapp",
)  # fmt: skip

_CC: Final = re.compile(r"^[A-Za-z]{2}$")
_DAY: Final = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")
_HOUR: Final = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2})(?::(\d{2})(?::(\d{2}))?)?Z?$")


class SelectionError(ValueError):
    """A flag that cannot be used; the message is one sentence for the user."""


def compact(test_name: str) -> str:
    """The name as bucket keys spell it: lower case, no underscores (``webconnectivity``)."""
    return re.sub(r"[^a-z0-9]", "", test_name.lower())


_BY_COMPACT: Final = {compact(t): t for t in TEST_NAMES}


def parse_test(name: str) -> str:
    """The compact name of a known OONI test; ``web_connectivity`` and ``webconnectivity``
    (and ``Web-Connectivity``) are the same test."""
    key = compact(name)
    if key in _BY_COMPACT:
        return key
    close = difflib.get_close_matches(key, list(_BY_COMPACT), n=1)
    hint = f" (did you mean {_BY_COMPACT[close[0]]}?)" if close else ""
    raise SelectionError(f"unknown OONI test name {name!r}{hint}")


def parse_cc(cc: str) -> str:
    if not _CC.match(cc.strip()):
        raise SelectionError(f"--cc must be a two-letter country code such as IR, not {cc!r}")
    return cc.strip().upper()


def parse_bound(text: str, *, end: bool) -> datetime:
    """An hour (UTC) from ``YYYY-MM-DD`` / ``YYYYMMDD`` (a whole day: its first hour, or its
    last when ``end``) or an ISO hour ``YYYY-MM-DDTHH[:MM[:SS]][Z]`` (minutes are dropped:
    the bucket is partitioned by hour)."""
    flag = "--until" if end else "--since"
    s = text.strip()
    try:
        if m := _DAY.match(s):
            d = datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC)
            return d + timedelta(hours=23) if end else d
        if m := _HOUR.match(s):
            return datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), tzinfo=UTC)
    except ValueError:
        pass
    raise SelectionError(
        f"{flag} must be a day (2019-11-16) or an hour (2019-11-16T05), not {text!r}"
    )


@dataclass(frozen=True)
class Selection:
    """One country, an inclusive range of upload hours, and the tests (empty: all)."""

    cc: str
    since: datetime
    until: datetime
    tests: tuple[str, ...] = ()

    def wants(self, test: str) -> bool:
        return not self.tests or compact(test) in self.tests

    def hours(self) -> list[datetime]:
        out, t = [], self.since
        while t <= self.until:
            out.append(t)
            t += timedelta(hours=1)
        return out

    def days(self) -> list[date]:
        first, last = self.since.date(), self.until.date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def describe(self) -> str:
        span = f"{self.since:%Y-%m-%dT%H}..{self.until:%Y-%m-%dT%H}"
        return f"{self.cc} {span} ({', '.join(self.tests) if self.tests else 'all tests'})"


def parse_selection(cc: str, since: str, until: str, tests: list[str]) -> Selection:
    start, stop = parse_bound(since, end=False), parse_bound(until, end=True)
    if stop < start:
        raise SelectionError(f"--until ({until}) is before --since ({since})")
    return Selection(parse_cc(cc), start, stop, tuple(dict.fromkeys(parse_test(t) for t in tests)))


@dataclass(frozen=True)
class Prefix:
    """One listing to make: a bucket, a key prefix and the layout its keys follow."""

    bucket: str
    prefix: str
    layout: str  # "raw" | "jsonl" | "can"


def raw_prefixes(sel: Selection, bucket: str) -> list[Prefix]:
    """One listing per hour: of the test's directory for one test, else of the country's
    directory (its tests are filtered from the listing: fewer requests than one each)."""
    out: list[Prefix] = []
    for h in sel.hours():
        if h.date() < RAW_FIRST_DAY:
            continue
        base = f"raw/{h:%Y%m%d}/{h:%H}/{sel.cc}/"
        only = f"{sel.tests[0]}/" if len(sel.tests) == 1 else ""
        out.append(Prefix(bucket, base + only, "raw"))
    return out


def jsonl_prefixes(sel: Selection, bucket: str, tests: list[str]) -> list[Prefix]:
    """``tests``: the selection's tests, or every test directory found under ``jsonl/``."""
    days = [d for d in sel.days() if d <= JSONL_LAST_DAY]
    return [Prefix(bucket, f"jsonl/{t}/{sel.cc}/{d:%Y%m%d}/", "jsonl") for t in tests for d in days]


def can_prefixes(sel: Selection, bucket: str, legacy_bucket: str) -> list[Prefix]:
    out: list[Prefix] = []
    for d in sel.days():
        if d > CANS_LAST_DAY:
            continue
        where = bucket if d >= NEW_CANS_FIRST_DAY else legacy_bucket
        out.append(Prefix(where, f"canned/{d:%Y-%m-%d}/", "can"))
    return out


def needs_old_layouts(sel: Selection) -> bool:
    return sel.since.date() <= CANS_LAST_DAY


# Keys a sync will write to disk. Anything else a server lists is skipped, so a key can
# never name a path outside the destination directory.
RAW_KEY: Final = re.compile(
    r"^raw/(\d{8})/(\d{2})/([A-Z]{2})/([a-z0-9]+)/[A-Za-z0-9][A-Za-z0-9._-]*\.jsonl\.gz$"
)
JSONL_KEY: Final = re.compile(
    r"^jsonl/([a-z0-9]+)/([A-Z]{2})/(\d{8})/\d{2}/[A-Za-z0-9][A-Za-z0-9._-]*\.jsonl\.gz$"
)
CAN_KEY: Final = re.compile(r"^canned/(\d{4}-\d{2}-\d{2})/([a-z0-9_]+)\.\d+\.tar\.lz4$")
# e.g. canned/2020-10-21/20201021T141726Z-US-AS20093-facebook_messenger-<rid>-0.2.0-probe.json.lz4
REPORT_KEY: Final = re.compile(
    r"^canned/(\d{4}-\d{2}-\d{2})/\d{8}T\d{6}Z-([A-Z]{2})-AS\d+-([a-z0-9_]+)-"
    r"[A-Za-z0-9_]+-[0-9.]+-probe\.json\.lz4$"
)


def member_cc(name: str) -> str | None:
    """The country of a report inside a can, from its name
    (``<dir>/<YYYYMMDD>T<HHMMSS>Z-<CC>-AS<n>-<test_name>-<report id>-<version>-probe.json``)."""
    parts = name.rsplit("/", 1)[-1].split("-")
    if len(parts) >= 4 and re.fullmatch(r"[A-Z]{2}", parts[1]):
        return parts[1]
    return None
