"""Lab accuracy: verdicts compared with a profile's ground truth.

The lab knows the truth (which rule blocks which URL, by which method); analysis does not.
This module lines the two up per URL, so the demo can print a verdict table with a
"matches the truth?" column and ``bench/lab_accuracy.py`` can print a confusion matrix per
method over all profiles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from didban.lab.profiles import Profile


class Row(msgspec.Struct, frozen=True):
    url: str
    service: str | None
    expected_outcome: str
    expected_method: str | None
    state: str
    layer: str | None
    method: str | None
    confirmed: bool
    rule_id: str

    @property
    def expected_label(self) -> str:
        return label(self.expected_outcome, self.expected_method)

    @property
    def got_label(self) -> str:
        return label(self.state, self.method)

    @property
    def match(self) -> bool:
        if self.state != self.expected_outcome:
            return False
        return self.expected_outcome == "ok" or self.method == self.expected_method


def label(state: str, method: str | None) -> str:
    """``ok``, ``down``, ``inconclusive`` or the blocking method (``blocked:?`` if unnamed)."""
    if state == "blocked":
        return method or "blocked:?"
    return state


def compare(verdicts: Iterable[Mapping[str, Any]], profile: Profile) -> list[Row]:
    """One row per verdict whose input the profile has ground truth for."""
    truth = {t.url: t for t in profile.ground_truth}
    rows: list[Row] = []
    for v in verdicts:
        url = v.get("input")
        if not isinstance(url, str) or url not in truth:
            continue
        t = truth[url]
        rows.append(
            Row(
                url=url,
                service=v.get("service"),
                expected_outcome=t.outcome,
                expected_method=t.method,
                state=str(v.get("state")),
                layer=v.get("layer"),
                method=v.get("method"),
                confirmed=bool(v.get("confirmed")),
                rule_id=str(v.get("rule_id", "")),
            )
        )
    return rows


def confusion(rows: Iterable[Row]) -> Counter[tuple[str, str]]:
    """(expected label, verdict label) -> count."""
    return Counter((r.expected_label, r.got_label) for r in rows)


def missing(verdicts_urls: Iterable[str], profile: Profile, urls: Iterable[str]) -> list[str]:
    """URLs that were measured targets with ground truth but got no verdict."""
    have = set(verdicts_urls)
    truth = {t.url for t in profile.ground_truth}
    return [u for u in urls if u in truth and u not in have]
