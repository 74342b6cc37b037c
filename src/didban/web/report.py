"""The self-contained HTML report a journalist can cite: one section per service/URL.

Each verdict is shown with its state, layer, method, rule id, confirmation, the reason,
and every piece of evidence resolved against the measurement (the JSON at each pointer:
DNS answers, TLS failure, blockpage excerpt, timings), plus the measurement's metadata.
Rendered with Jinja2 with autoescaping on: measurement content is attacker-controlled.
Inline CSS only; no external assets. The template is ``templates/report.html.j2``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Final

import jinja2
import msgspec

from didban.analysis.rules import RULES_VERSION
from didban.model.verdict import Verdict

EXCERPT_CHARS: Final = 2000


def resolve(doc: Any, pointer: str) -> Any:
    """The value at a JSON pointer (RFC 6901) in ``doc``; raises ``LookupError`` if absent."""
    if pointer == "":
        return doc
    if not pointer.startswith("/"):
        raise LookupError(pointer)
    cur = doc
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(cur, dict):
            if token not in cur:
                raise LookupError(pointer)
            cur = cur[token]
        elif isinstance(cur, list):
            if not (token.isascii() and token.isdigit()) or int(token) >= len(cur):
                raise LookupError(pointer)
            cur = cur[int(token)]
        else:
            raise LookupError(pointer)
    return cur


def excerpt(value: Any) -> str:
    """``value`` as indented JSON, cut to ``EXCERPT_CHARS`` characters."""
    text = msgspec.json.format(msgspec.json.encode(value), indent=2).decode("utf-8", "replace")
    if len(text) > EXCERPT_CHARS:
        return text[:EXCERPT_CHARS] + f"\n… ({len(text) - EXCERPT_CHARS} more characters)"
    return text


@dataclass
class Item:
    verdict: Verdict
    evidence: list[tuple[Any, str]]  # (Evidence, resolved excerpt or "")
    # the measurement's own test_keys blocking/accessible (what OONI's probe concluded;
    # didban's probe leaves them null), None when the measurement has neither key
    recorded: tuple[Any, Any] | None = None
    # the didban lab profile the measurement was made in (annotations), None: a network
    lab_profile: str | None = None


@dataclass
class Group:
    key: str
    items: list[Item] = field(default_factory=list)

    @property
    def worst(self) -> str:
        states = {i.verdict.state for i in self.items}
        for s in ("blocked", "down", "inconclusive", "ok"):
            if s in states:
                return s
        return "ok"


def item(verdict: Verdict, measurement: dict[str, Any] | None) -> Item:
    evs: list[tuple[Any, str]] = []
    for ev in verdict.evidence:
        text = ""
        if (
            measurement is not None
            and ev.pointer
            and not ev.pointer.endswith(("/queries", "/tcp_connect", "/tls_handshakes"))
        ):
            try:
                text = excerpt(resolve(measurement, ev.pointer))
            except LookupError:
                text = "(pointer not found in the measurement)"
        evs.append((ev, text))
    recorded = None
    keys = measurement.get("test_keys") if measurement is not None else None
    if isinstance(keys, dict) and (
        keys.get("blocking") is not None or keys.get("accessible") is not None
    ):  # didban's probe leaves both null: nothing to show
        recorded = (keys.get("blocking"), keys.get("accessible"))
    notes = measurement.get("annotations") if measurement is not None else None
    lab = notes.get("x_didban_lab_profile") if isinstance(notes, dict) else None
    return Item(verdict, evs, recorded, lab if isinstance(lab, str) and lab else None)


TEMPLATE: Final = "templates/report.html.j2"  # in this package


def render(items: Iterable[Item], generated: datetime | None = None) -> str:
    """The report HTML for ``items`` (autoescaped)."""
    source = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    # OONI's keys as they appear in the JSON (false, null, "dns"), not Python's spelling.
    env.filters["json"] = lambda value: msgspec.json.encode(value).decode()
    tmpl = env.from_string(source)
    groups: dict[str, Group] = {}
    summary: dict[tuple[Any, ...], dict[str, Any]] = {}
    states: dict[str, int] = {}
    total = 0
    labs: dict[str, int] = {}  # lab profile -> measurements made in it
    for it in items:
        v = it.verdict
        total += 1
        if it.lab_profile is not None:
            labs[it.lab_profile] = labs.get(it.lab_profile, 0) + 1
        states[v.state] = states.get(v.state, 0) + 1
        key = (
            f"{v.service} — {v.input}"
            if v.service and v.input
            else (v.input or v.service or v.test_name)
        )
        groups.setdefault(key, Group(key)).items.append(it)
        skey = (key, v.probe_cc, v.state, v.layer, v.method, v.rule_id, v.confirmed)
        row = summary.setdefault(
            skey,
            {
                "key": key,
                "cc": v.probe_cc or "?",
                "state": v.state,
                "layer": v.layer,
                "method": v.method,
                "rule_id": v.rule_id,
                "confirmed": v.confirmed,
                "count": 0,
            },
        )
        row["count"] += 1
    order = sorted(groups)
    anchor = {k: i for i, k in enumerate(order, start=1)}  # the template's id="g<N>"
    for row in summary.values():
        row["anchor"] = anchor[row["key"]]
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return tmpl.render(
        generated=when,
        rules_version=RULES_VERSION,
        total=total,
        states=sorted(states.items()),
        summary=[
            summary[k]
            for k in sorted(summary, key=lambda k: (str(k[0]), str(k[1]), str(k[2]), str(k[5])))
        ],
        groups=[groups[k] for k in order],
        labs=sorted(labs.items()),
    )
