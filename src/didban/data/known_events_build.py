"""Rebuild ``known-events.csv`` from the public records it is derived from (a maintainer's tool).

    python -m didban.data.known_events_build ../shared/reference > src/didban/data/known-events.csv

Inputs: ``iran-events.csv`` (event-detection.md §8, 31 dated Iranian events with their
sources) and ``ioda-iran-outages.csv`` (the 103 Iranian rows of IODA's manually
investigated outages, SIGCOMM '23), plus the project's seed timeline (issue 16) for the
three rows no other record dates. The mapping rules are in ``known-events.md``; the
caveats of event-detection.md §11 are kept in each row's ``caveat``. Nothing here runs at
detection time: didban reads only the shipped CSV.
"""

from __future__ import annotations

import csv
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Final

COLUMNS: Final = (
    "id",
    "kind",
    "cc",
    "asns",
    "targets",
    "scope",
    "start",
    "end",
    "description",
    "source",
    "caveat",
)

# §8 rows → service ids of the catalog (or domains where the catalog has none).
TARGETS: Final[dict[str, str]] = {
    "1": "facebook;twitter;youtube",
    "2": "gmail",
    "3": "gmail",
    "4": "telegram",
    "5": "instagram",
    "6": "messenger.com",
    "7": "telegram",
    "15": "signal",
    "17": "clubhouse.com",
    "20": "dns.google;cloudflare-dns.com",
    "21": "instagram",
    "22": "whatsapp",
    "24": "play.google.com;apps.apple.com",
    "25": "skype.com",
    "30": "whatsapp",
}

SEEDS: Final = (
    ("seed-1", "block", "flickr;cloob", "2009", "Flickr and Cloob blocked"),
    ("seed-2", "block", "gmail;yahoomail", "2011", "Gmail and Yahoo Mail blocked"),
    ("seed-3", "block", "tabnak", "2012", "Tabnak blocked"),
)
SEED_SOURCE: Final = "didban project seed timeline (issue 16)"
SEED_CAVEAT: Final = "year only; not dated by an independent source in didban's references"

_IODA_TIME: Final = "%A, %B %d, %Y, %I:%M:%S %p"
SCOPE_COLUMN: Final = "Scope (based on granularity at which the outage appears in IODA)"


def _scope_kind(scope: str) -> tuple[str, str]:
    s = scope.strip()
    m = re.match(r"AS \((\d+)\)", s)
    if m:
        return f"AS{m.group(1)}", "AS"
    m = re.match(r"Region \((.+)\)", s)
    if m:
        return "", f"regional ({m.group(1)})"
    return "", "national" if s == "Country" else s.lower()


def _ioda_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text.strip(), _IODA_TIME)
    except ValueError:
        return None


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%MZ")


def ioda_rows(path: Path) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    with path.open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            rid = r["ID"].strip()
            if rid in seen:
                continue
            seen.add(rid)
            asns, scope = _scope_kind(
                r["Scope (based on granularity at which the outage appears in IODA)"]
            )
            begin, end = _ioda_time(r["Begin time"]), _ioda_time(r["End time"])
            if begin is None:
                continue
            caveats = ["times carry no timezone in the source; read as UTC"]
            end_text = _iso(end) if end else ""
            if end is not None and end < begin:
                end_text = ""
                caveats.append("end before begin in the source (AM/PM error); end left open")
            cause = (r.get("Cause") or "").strip()
            status = (r.get("Confirmation Status") or "").strip()
            kind = "shutdown" if cause == "Government-Ordered" else "outage"
            desc = f"IODA investigated outage, {scope}"
            if cause:
                desc += f", cause {cause}"
            if status:
                desc += f", {status.lower()}"
            out.append(
                {
                    "id": f"ioda-{rid}",
                    "kind": kind,
                    "cc": "IR",
                    "asns": asns,
                    "targets": "",
                    "scope": scope,
                    "start": _iso(begin),
                    "end": end_text,
                    "description": desc,
                    "source": "IODA manually investigated outages (Bischof et al., SIGCOMM '23, "
                    f"doi:10.1145/3603269.3604883), row {rid}",
                    "caveat": "; ".join(caveats),
                }
            )
    return out


def record_rows(path: Path) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            rid = r["id"]
            caveat = "dates as reported (press dates lag onsets; store brackets, not points)"
            if "disputed" in r["service_or_scope"]:
                caveat = "disputed; " + caveat
            out.append(
                {
                    "id": f"ir-{rid}",
                    "kind": r["kind"],
                    "cc": "IR",
                    "asns": r["asns"],
                    "targets": TARGETS.get(rid, ""),
                    "scope": r["scope"],
                    "start": r["start"],
                    "end": r["end"],
                    "description": r["service_or_scope"],
                    "source": r["source"],
                    "caveat": caveat,
                }
            )
    return out


def main(argv: list[str]) -> int:
    ref = Path(argv[1]) if len(argv) > 1 else Path("../shared/reference")
    rows = [
        {
            "id": sid,
            "kind": kind,
            "cc": "IR",
            "asns": "",
            "targets": targets,
            "scope": "national",
            "start": start,
            "end": "",
            "description": desc,
            "source": SEED_SOURCE,
            "caveat": SEED_CAVEAT,
        }
        for sid, kind, targets, start, desc in SEEDS
    ]
    rows += record_rows(ref / "iran-events.csv")
    rows += ioda_rows(ref / "ioda-iran-outages.csv")
    w = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
