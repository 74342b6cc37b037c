"""The self-contained HTML report a journalist can cite: one section per service/URL.

Each verdict is shown with its state, layer, method, rule id, confirmation, the reason,
and every piece of evidence resolved against the measurement (the JSON at each pointer:
DNS answers, TLS failure, blockpage excerpt, timings), plus the measurement's metadata.
Rendered with the explorer's templates, stylesheet (inlined: no external asset), glossary
and languages (``--lang fa``: Farsi, right to left, Persian digits, both calendars), with
autoescaping on: measurement content is attacker-controlled. The page opens with an
executive summary (counts by state, layer and method), the window and the vantage points;
evidence is collapsed; with ``--explorer URL`` every verdict links to its measurement page.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
from markupsafe import Markup

from didban.analysis.rules import RULES_VERSION
from didban.model.admission import measurement_refusal
from didban.model.verdict import Verdict
from didban.store.uid import content_hash
from didban.web import glossary, pages
from didban.web.i18n import Lang

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
    # the uid the store gives this measurement (its permalink /m/{uid} on an explorer)
    uid: str | None = None
    network: str | None = None  # probe_network_name


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
    uid = verdict.measurement_uid
    if uid is None and measurement is not None and measurement_refusal(measurement) is None:
        # the uid ingest gives it (the same rule: the store's own function; imported here,
        # where it is used, so that `didban report --help` does not load DuckDB); a record
        # the store refuses (too deep, no start time...) has no page to link to
        from didban.store.store import Store

        uid = Store._uid_for(measurement, content_hash(measurement), None)
    network = measurement.get("probe_network_name") if measurement is not None else None
    return Item(
        verdict,
        evs,
        recorded,
        lab if isinstance(lab, str) and lab else None,
        uid,
        network if isinstance(network, str) else None,
    )


TEMPLATE: Final = "report.html.j2"  # in templates/, beside the explorer's
CSS: Final = Path(__file__).parent / "static" / "explorer.css"
_FONT_FACE: Final = re.compile(r"@font-face\{[^}]*\}")


def _inline_css() -> str:
    """The explorer's stylesheet for a self-contained file: without its web fonts (files
    the report cannot carry; the system's fonts shape Persian too)."""
    css = _FONT_FACE.sub("", CSS.read_text(encoding="utf-8"))
    return css.replace("</", "<\\/")


def _label(v: Verdict) -> str:
    if v.service and v.input:
        return f"{v.service} — {v.input}"
    return v.input or v.service or v.test_name


def render(
    items: Iterable[Item],
    generated: datetime | None = None,
    lang: str = "en",
    explorer: str | None = None,
) -> str:
    """The report HTML for ``items`` in ``lang`` (autoescaped); with ``explorer`` (the base
    URL of a didban explorer serving these measurements) each verdict links to its page."""
    env = pages.environment(lang)
    # OONI's keys as they appear in the JSON (false, null, "dns"), not Python's spelling.
    env = env.overlay()
    env.filters["json"] = lambda value: msgspec.json.encode(value).decode()
    groups: dict[str, Group] = {}
    summary: dict[tuple[Any, ...], dict[str, Any]] = {}
    states: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    networks: Counter[tuple[str, str, str]] = Counter()
    times: list[str] = []
    labs: Counter[str] = Counter()  # lab profile -> measurements made in it
    for it in items:
        v = it.verdict
        if it.lab_profile is not None:
            labs[it.lab_profile] += 1
        states[v.state] += 1
        if v.state == "blocked":
            layers[v.layer or "?"] += 1
            methods[v.method or "?"] += 1
        networks[(v.probe_cc or "?", v.probe_asn or "?", it.network or "")] += 1
        times.append(v.measurement_start_time)
        key = _label(v)
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
    when = generated or datetime.now(UTC)
    language = Lang(lang)
    page = pages.Page(TEMPLATE, language.gettext("didban verdict report"), {})
    where = pages.Where(language, "/report", {}, (explorer or "").rstrip("/"))
    return env.get_template(TEMPLATE).render(
        page=page,
        where=where,
        lang=language,
        generated=when,
        rules_version=RULES_VERSION,
        total=sum(states.values()),
        states=sorted(states.items()),
        layers=layers.most_common(),
        methods=methods.most_common(),
        networks=sorted(networks.items()),
        first=min(times) if times else None,
        last=max(times) if times else None,
        glossary=glossary.methods(language, set(methods)),
        explorer=(explorer or "").rstrip("/") or None,
        css=Markup(_inline_css()),
        summary=[
            summary[k]
            for k in sorted(summary, key=lambda k: (str(k[0]), str(k[1]), str(k[2]), str(k[5])))
        ],
        groups=[groups[k] for k in order],
        labs=sorted(labs.items()),
    )
