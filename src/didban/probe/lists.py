"""Test lists: the Citizen Lab CSV format, ``--url`` inputs, category filters, the default list.

A list file has the header ``url,category_code,category_description,date_added,source,notes``
(https://github.com/citizenlab/test-lists, README and ``scripts/lint-lists.py``). Every bad row
is reported as ``file:line: reason`` (bad URL, wrong column count, bad date, duplicate within
the file); one bad row makes the whole list unusable, so nothing is measured from a file the
user has to fix first. The same URL arriving from two sources (two files, a file and
``--url``) is measured once, with the first source's metadata.
"""

from __future__ import annotations

import csv
import datetime as dt
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from didban.data.categories import category_problem

HEADER = ("url", "category_code", "category_description", "date_added", "source", "notes")
DEFAULT_LIST_NAME = "default-list.csv"

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class ListError(ValueError):
    """A list, URL or filter the user gave cannot be used; ``problems`` holds every reason."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One URL to measure, with its Citizen Lab metadata (empty for ``--url`` inputs)."""

    url: str
    category_code: str = ""
    category_description: str = ""
    date_added: str = ""
    source: str = ""
    notes: str = ""

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be measured, or None. Accepts http(s) URLs with a DNS name or IP."""
    if not url or url != url.strip() or any(c.isspace() for c in url):
        return f"bad URL {url!r}: empty or contains whitespace"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"bad URL {url!r}: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"bad URL {url!r}: the scheme must be http or https"
    host = parts.hostname
    if not host:
        return f"bad URL {url!r}: no host name"
    if port == 0:
        return f"bad URL {url!r}: port 0"
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if len(labels) < 2 and host != "localhost":
        return f"bad URL {url!r}: host {host!r} is not a fully qualified name"
    if not all(_LABEL.match(label) for label in labels):
        return f"bad URL {url!r}: host {host!r} is not a valid DNS name"
    return None


def _date_problem(value: str) -> str | None:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return f"bad date_added {value!r} (expected YYYY-MM-DD)"
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return f"bad date_added {value!r} (expected YYYY-MM-DD)"
    return None


def read_csv(path: Path, label: str | None = None) -> list[ListEntry]:
    """Read one Citizen Lab CSV; raise ``ListError`` listing every bad row as file:line."""
    name = label or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ListError(f"{name}: no such test-list file") from None
    except IsADirectoryError:
        raise ListError(f"{name}: is a directory, not a test-list CSV file") from None
    except UnicodeDecodeError:
        raise ListError(f"{name}: not a UTF-8 text file") from None
    except OSError as exc:
        raise ListError(f"{name}: cannot read it ({exc.strerror})") from None
    return parse_csv(text, name)


def parse_csv(text: str, name: str) -> list[ListEntry]:
    """Parse Citizen Lab CSV text; ``name`` prefixes the ``file:line`` problems."""
    problems: list[str] = []
    entries: list[ListEntry] = []
    seen: dict[str, int] = {}
    reader = csv.reader(text.splitlines())
    header_seen = False
    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if not header_seen:
            header_seen = True
            if tuple(c.strip() for c in row) != HEADER:
                problems.append(f"{name}:{line}: the header must be {','.join(HEADER)}")
                break
            continue
        if len(row) != len(HEADER):
            problems.append(f"{name}:{line}: {len(row)} columns, expected {len(HEADER)}")
            continue
        url, code, desc, date_added, source, notes = row
        bad = url_problem(url)
        if bad is None and code and (problem := category_problem(code)):
            bad = f"bad category_code: {problem}"
        if bad is None:
            bad = _date_problem(date_added)
        if bad is None and url in seen:
            bad = f"duplicate of line {seen[url]} ({url})"
        if bad is not None:
            problems.append(f"{name}:{line}: {bad}")
            continue
        seen[url] = line
        entries.append(ListEntry(url, code, desc, date_added, source, notes))
    if not header_seen:
        problems.append(f"{name}:1: empty file (no header)")
    if problems:
        count = len(problems)
        raise ListError(
            f"{name} has {count} bad row{'s' if count > 1 else ''}; first: {problems[0]}",
            problems,
        )
    return entries


def default_list() -> list[ListEntry]:
    """The built-in list shipped in ``didban/data/default-list.csv``."""
    res = resources.files("didban.data").joinpath(DEFAULT_LIST_NAME)
    return parse_csv(res.read_text(encoding="utf-8"), f"(built-in) {DEFAULT_LIST_NAME}")


def build(
    files: Iterable[Path] = (),
    urls: Iterable[str] = (),
    categories: Iterable[str] = (),
) -> list[ListEntry]:
    """The URLs to measure: files and ``--url`` inputs, or the default list when neither is
    given. Category codes filter list rows (an explicit ``--url`` is always kept); raises
    ``ListError`` when nothing is left."""
    files = list(files)
    urls = list(urls)
    cats = {c.strip().upper() for c in categories if c.strip()}
    for c in sorted(cats):
        if problem := category_problem(c):
            raise ListError(f"--category {problem}")
    entries: list[ListEntry] = []
    for f in files:
        entries.extend(read_csv(f))
    for u in urls:
        bad = url_problem(u)
        if bad is not None:
            raise ListError(f"--url: {bad}")
        entries.append(ListEntry(u, source="--url"))
    if not files and not urls:
        entries = default_list()
    out: list[ListEntry] = []
    seen: set[str] = set()
    for e in entries:
        if e.url in seen:
            continue
        seen.add(e.url)
        if cats and e.source != "--url" and e.category_code not in cats:
            continue
        out.append(e)
    if not out:
        if cats:
            raise ListError(f"no URL to measure: no entry has category {', '.join(sorted(cats))}")
        raise ListError("no URL to measure: the given lists are empty")
    return out
