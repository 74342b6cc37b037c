"""The glossary of methods and rules (``/methods``, and the report's glossary): every
method of ``model.verdict.METHODS`` with the rules of ``analysis.rules`` that conclude it,
and what "confirmed" means for each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from didban.analysis.rules import ALL, RULES_VERSION
from didban.model.verdict import METHODS
from didban.web.i18n import Lang
from didban.web.pages import Page, Where

if TYPE_CHECKING:
    from starlette.datastructures import QueryParams

    from didban.store.store import Store

# A blocking verdict is confirmed exactly when it rests on a fingerprint (a censor's own
# artefact: its blockpage, its injected address); these rules are the ones that read one.
_FINGERPRINT_RULES: Final = ("fingerprint", "blockpage", "dnscheck.injection")


def confirmable(rule_id: str) -> bool:
    return any(mark in rule_id for mark in _FINGERPRINT_RULES)


def methods(lang: Lang, only: set[str] | None = None) -> list[dict[str, Any]]:
    """Each method (or those in ``only``): its description in ``lang``, its layers, its
    rules and whether one of them can confirm it."""
    out = []
    for name, text in METHODS.items():
        if only is not None and name not in only:
            continue
        rules = [
            {"id": r.id, "state": r.state, "layer": r.layer, "confidence": r.confidence,
             "summary": r.summary, "confirmable": confirmable(r.id)}
            for r in ALL.values()
            if r.method == name
        ]  # fmt: skip
        out.append(
            {"method": name, "description": lang.gettext(text),
             "layers": sorted({str(r["layer"]) for r in rules if r["layer"]}),
             "rules": rules, "confirmable": any(r["confirmable"] for r in rules)}
        )  # fmt: skip
    return out


def page(store: Store, where: Where, params: QueryParams) -> Page:
    listed = methods(where.lang)
    other = [
        {"id": r.id, "state": r.state, "confidence": r.confidence, "summary": r.summary}
        for r in ALL.values()
        if r.method is None
    ]  # fmt: skip
    rows = [
        {"method": m["method"], "description": m["description"], "layers": m["layers"],
         "rules": [r["id"] for r in m["rules"]], "confirmable": m["confirmable"]}
        for m in listed
    ]  # fmt: skip
    return Page(
        "methods.html.j2",
        where.lang.gettext("Methods and rules"),
        {"methods": listed, "other_rules": other, "rules_version": RULES_VERSION},
        {"methods": rows, "rules": [{**r, "method": m["method"]} for m in listed
                                    for r in m["rules"]] + other},
        "didban-methods",
    )  # fmt: skip
