"""The evidence page's data (``/m/{measurement_uid}``): every DNS, TCP, TLS, HTTP and QUIC
step of a measurement with its failure string and timing, the steps the verdict's
evidence points at marked, the control's view of the same target, and a citation.

Steps are read from the OONI test keys every web and IM test writes (``queries``,
``tcp_connect``, ``tls_handshakes``, ``quic_handshakes``, ``requests``; df-002, df-005,
df-006, df-001) and didban's ``x_didban_quic``; each keeps its JSON pointer, so the
verdict's evidence pointers (``model.verdict.Evidence``) are found in place: a step the
evidence points at (or into) is marked as evidence, a step of a list the evidence names
as a whole is marked as its context.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final

from didban.analysis.rules import ALL as RULES
from didban.model.verdict import METHODS
from didban.store import queries
from didban.store.store import Store
from didban.web.pages import Page, PageError, Where
from didban.web.report import excerpt, resolve

BODY_CHARS: Final = 600
_TITLE: Final = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _body(value: Any) -> str:
    if isinstance(value, dict) and value.get("format") == "base64":
        try:
            return base64.b64decode(str(value.get("data", ""))).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return ""
    return value if isinstance(value, str) else ""


def _list(keys: dict[str, Any], name: str) -> list[tuple[str, dict[str, Any]]]:
    items = keys.get(name)
    if not isinstance(items, list):
        return []
    return [(f"/test_keys/{name}/{i}", x) for i, x in enumerate(items) if isinstance(x, dict)]


def _dns(keys: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for ptr, q in _list(keys, "queries"):
        answers = [
            str(a.get("ipv4") or a.get("ipv6") or a.get("hostname") or "")
            for a in q.get("answers") or []
            if isinstance(a, dict)
        ]
        resolver = q.get("resolver_address") or q.get("engine") or ""
        out.append(
            {"pointer": ptr, "layer": "dns",
             "what": f"{q.get('query_type', '?')} {q.get('hostname', '')} @ {resolver}".strip(),
             "result": ", ".join(a for a in answers if a), "failure": q.get("failure"),
             "t0": _num(q.get("t0")), "t": _num(q.get("t"))}
        )  # fmt: skip
    for ptr, q in _list(keys, "x_dns_duplicate_responses"):
        out.append(
            {"pointer": ptr, "layer": "dns", "what": f"late reply {q.get('hostname', '')}",
             "result": ", ".join(str(a.get("ipv4") or a.get("ipv6") or "") for a in
                                 q.get("answers") or [] if isinstance(a, dict)),
             "failure": q.get("failure"), "t0": _num(q.get("t0")), "t": _num(q.get("t"))}
        )  # fmt: skip
    return out


def _tcp(keys: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for ptr, c in _list(keys, "tcp_connect"):
        status = _dict(c.get("status"))
        ok = bool(status.get("success"))
        out.append(
            {"pointer": ptr, "layer": "tcp",
             "what": f"connect {c.get('ip', '?')}:{c.get('port', '?')}",
             "result": "connected" if ok else "", "failure": status.get("failure"),
             "t0": _num(c.get("t0")), "t": _num(c.get("t"))}
        )  # fmt: skip
    return out


def _handshakes(keys: dict[str, Any], name: str, layer: str) -> list[dict[str, Any]]:
    out = []
    for ptr, h in _list(keys, name):
        certs = h.get("peer_certificates") or []
        result = " ".join(str(x) for x in (h.get("tls_version"), h.get("negotiated_protocol")) if x)
        if certs:
            result += f" · {len(certs)} certificate(s)"
        out.append(
            {"pointer": ptr, "layer": layer,
             "what": f"handshake {h.get('address', '?')} SNI {h.get('server_name', '?')}",
             "result": result.strip(" ·"), "failure": h.get("failure"),
             "t0": _num(h.get("t0")), "t": _num(h.get("t"))}
        )  # fmt: skip
    return out


def _didban_quic(keys: dict[str, Any]) -> list[dict[str, Any]]:
    """didban's own HTTP/3 attempts (``x_didban_quic``: a QUIC handshake, then a request)."""
    out = []
    for ptr, q in _list(keys, "x_didban_quic"):
        hs = _dict(q.get("handshake"))
        req = _dict(q.get("request"))
        resp = _dict(req.get("response"))
        result = " ".join(
            str(x) for x in (hs.get("tls_version"), hs.get("negotiated_protocol")) if x
        )
        if resp.get("code"):
            result += f" · HTTP/3 {resp['code']}"
        out.append(
            {"pointer": ptr, "layer": "quic",
             "what": f"handshake {q.get('address', '?')} SNI {hs.get('server_name', '?')}",
             "result": result.strip(" ·"), "failure": q.get("failure"),
             "t0": _num(hs.get("t0")), "t": _num(hs.get("t"))}
        )  # fmt: skip
    return out


def _http(keys: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for ptr, r in _list(keys, "requests"):
        req = _dict(r.get("request"))
        resp = _dict(r.get("response"))
        body = _body(resp.get("body"))
        title = _TITLE.search(body)
        code = resp.get("code")
        result = f"{code}" if code else ""
        if body:
            result += f" · {len(body)} bytes"
        out.append(
            {"pointer": ptr, "layer": "http",
             "what": f"{req.get('method', 'GET')} {req.get('url', '?')}",
             "result": result.strip(" ·"), "failure": r.get("failure"),
             "t0": _num(r.get("t0")), "t": _num(r.get("t")),
             "title": " ".join(title.group(1).split())[:200] if title else None,
             "body": body[:BODY_CHARS] if body else None}
        )  # fmt: skip
    return out


def steps(measurement: dict[str, Any]) -> list[dict[str, Any]]:
    keys = measurement.get("test_keys")
    if not isinstance(keys, dict):
        return []
    return [
        *_dns(keys),
        *_tcp(keys),
        *_handshakes(keys, "tls_handshakes", "tls"),
        *_handshakes(keys, "quic_handshakes", "quic"),
        *_didban_quic(keys),
        *_http(keys),
    ]


def control_view(measurement: dict[str, Any]) -> list[dict[str, Any]]:
    """What the control (the test helper, unfiltered) saw, per layer."""
    keys = measurement.get("test_keys")
    ctrl = keys.get("control") if isinstance(keys, dict) else None
    if not isinstance(ctrl, dict):
        return []
    out: list[dict[str, Any]] = []
    dns = ctrl.get("dns")
    if isinstance(dns, dict):
        out.append({"pointer": "/test_keys/control/dns", "layer": "dns", "what": "resolve",
                    "result": ", ".join(map(str, dns.get("addrs") or [])),
                    "failure": dns.get("failure")})  # fmt: skip
    for name, layer in (("tcp_connect", "tcp"), ("tls_handshake", "tls")):
        items = ctrl.get(name)
        if isinstance(items, dict):
            for endpoint, status in items.items():
                if isinstance(status, dict):
                    out.append(
                        {"pointer": f"/test_keys/control/{name}/{endpoint}", "layer": layer,
                         "what": endpoint, "result": "ok" if status.get("status") else "",
                         "failure": status.get("failure")}
                    )  # fmt: skip
    http = ctrl.get("http_request")
    if isinstance(http, dict):
        result = f"{http.get('status_code', '')} · {http.get('body_length', '?')} bytes"
        out.append({"pointer": "/test_keys/control/http_request", "layer": "http",
                    "what": "GET", "result": result, "failure": http.get("failure"),
                    "title": http.get("title") or None})  # fmt: skip
    return out


def _points_at(step_pointer: str, evidence_pointer: str) -> bool:
    """The evidence is this step or a value inside it."""
    return step_pointer == evidence_pointer or evidence_pointer.startswith(step_pointer + "/")


def _within(step_pointer: str, evidence_pointer: str) -> bool:
    """The evidence is the whole list (or object) this step belongs to."""
    return step_pointer.startswith(evidence_pointer + "/")


def measurement(store: Store, where: Where, uid: str) -> Page:
    raw = store.get(uid)
    if raw is None:
        raise PageError(404, f"there is no measurement {uid!r} in this store")
    loc = store.index.locate(uid)
    verdict = queries.verdict_for(store.reader, uid, loc.day) if loc is not None else None
    pointers = [e["pointer"] for e in (verdict or {}).get("evidence", []) if e.get("pointer")]
    probe = steps(raw)
    control = control_view(raw)
    for s in [*probe, *control]:
        s["evidence"] = any(_points_at(s["pointer"], p) for p in pointers)
        s["context"] = not s["evidence"] and any(_within(s["pointer"], p) for p in pointers)
    evidence = []
    for e in (verdict or {}).get("evidence", []):
        text = ""
        try:
            text = excerpt(resolve(raw, e.get("pointer", "")))
        except LookupError:
            text = ""
        evidence.append({**e, "excerpt": text})
    rule = RULES.get(verdict["rule_id"]) if verdict else None
    permalink = where.permalink(f"/m/{uid}")
    state = verdict["state"] if verdict else "unclassified"
    subject = raw.get("input") or raw.get("test_name")
    lab = (raw.get("annotations") or {}).get("x_didban_lab_profile")
    lab = lab if isinstance(lab, str) else None
    cite = (
        f"didban, measurement {uid}: {subject} — {state}"
        + (f" ({verdict['method']})" if verdict and verdict.get("method") else "")
        + f", {raw.get('probe_cc')} AS{str(raw.get('probe_asn', '')).removeprefix('AS')}, "
        f"{raw.get('measurement_start_time')} UTC"
        # a citation is copied without the page's banner: it carries the warning itself
        + (
            f", in didban's emulated censorship lab (profile {lab}), not a real network"
            if lab
            else ""
        )
        + (f"; rule {verdict['rule_id']}, rules {verdict['rules_version']}" if verdict else "")
        + f". {permalink}"
    )
    meta = {k: raw.get(k) for k in (
        "input", "test_name", "test_version", "probe_cc", "probe_asn", "probe_network_name",
        "report_id", "measurement_start_time", "software_name", "software_version",
        "resolver_ip", "resolver_asn")}  # fmt: skip
    return Page(
        "measurement.html.j2",
        f"{subject}",
        {"measurement_uid": uid, "meta": meta, "verdict": verdict, "steps": probe,
         "control": control, "evidence": evidence, "permalink": permalink, "cite": cite,
         "rule": {"id": rule.id, "summary": rule.summary} if rule else None,
         "method_text": METHODS.get((verdict or {}).get("method") or ""),
         "lab_profile": lab,
         "raw_url": f"/api/v1/raw_measurement?measurement_uid={uid}"},
        {"steps": probe, "control": control, "evidence": evidence},
        f"didban-measurement-{uid}",
    )  # fmt: skip
