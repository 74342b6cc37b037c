"""Turning one archived measurement (a plain dict) and its verdict into table rows.

Readers of foreign measurements must accept any field missing, null or oddly typed, so
every access here is defensive. No censorship rule lives here: the verdict comes from
``didban.analysis``; this module only copies its fields and maps its state onto OONI's
``anomaly`` / ``confirmed`` / ``failure`` flags:

* ``blocked`` → anomaly (``confirmed`` when the verdict is confirmed);
* ``ok`` → none of the three;
* ``down``, ``inconclusive`` and *no verdict at all* → failure (never silently ok).
"""

from __future__ import annotations

import csv
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import orjson

from didban.data import catalog
from didban.data import path as data_path
from didban.data.ipasn import AsnDB
from didban.model.verdict import Verdict
from didban.store.uid import parse_time, uid_time

Row = dict[str, Any]


def _s(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def text(v: Any, default: str) -> str:
    """``v`` when it is a non-empty string, else ``default``."""
    return v if isinstance(v, str) and v else default


def country(v: Any) -> str:
    """A two-capital-letter country code, or ``ZZ`` (OONI's unknown)."""
    return v if isinstance(v, str) and len(v) == 2 and v.isalpha() and v.isupper() else "ZZ"


def _i(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _f(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    return float(v) if isinstance(v, int | float) else None


def asn_int(v: Any) -> int | None:
    """``"AS197207"`` or ``197207`` → 197207."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str):
        t = v.upper().removeprefix("AS")
        if t.isdigit():
            return int(t)
    return None


def naive(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=None) if t else None


def domain_of(inp: str | None) -> str | None:
    if not inp:
        return None
    if "://" in inp:
        try:
            host = urlsplit(inp).hostname
        except ValueError:
            return None
        return host.lower() if host else None
    t = inp.strip().lower()
    return t if t and "/" not in t and " " not in t else None


@lru_cache(maxsize=1)
def _default_categories() -> dict[str, str]:
    out: dict[str, str] = {}
    with data_path("default-list.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            dom = domain_of(row.get("url"))
            if dom and row.get("category_code"):
                out.setdefault(dom, row["category_code"])
    return out


def category_for(domain: str | None, service: str | None) -> str | None:
    """The Citizen Lab category code, when the catalog or the default list knows it."""
    if service:
        try:
            return catalog.by_id(service).category
        except KeyError:
            pass
    if not domain:
        return None
    table = _default_categories()
    d = domain
    while d:
        if d in table:
            return table[d]
        if "." not in d:
            return None
        d = d.split(".", 1)[1]
    return None


def measurement_day(m: dict[str, Any], uid: str) -> str:
    t = parse_time(m.get("measurement_start_time")) or uid_time(uid)
    return f"{t:%Y-%m-%d}" if t else "1970-01-01"


def state_flags(v: Verdict | None) -> tuple[bool, bool, bool]:
    """(anomaly, confirmed, failure) for a verdict, per the mapping in the module docstring."""
    if v is None:
        return False, False, True
    if v.state == "blocked":
        return True, bool(v.confirmed), False
    if v.state == "ok":
        return False, False, False
    return False, False, True


def verdict_columns(v: Verdict | None) -> Row:
    """The columns of a measurement row that come from its verdict alone (what a run-level
    verdict changes; ``domain`` and ``service`` are kept by it)."""
    anomaly, confirmed, failure = state_flags(v)
    return {
        "state": v.state if v else None,
        "layer": v.layer if v else None,
        "method": v.method if v else None,
        "blocking_type": v.method if v else None,
        "anomaly": anomaly,
        "confirmed": confirmed,
        "failure": failure,
        "rules_version": v.rules_version if v else None,
    }


def measurement_row(m: dict[str, Any], uid: str, v: Verdict | None) -> Row:
    inp = _s(m.get("input"))
    dom = (v.domain if v and v.domain else None) or domain_of(inp)
    svc = (v.service if v and v.service else None) or catalog.service_for_url(inp)
    if svc is None and dom:
        svc = catalog.service_for_host(dom)
    return {
        "measurement_uid": uid,
        "report_id": _s(m.get("report_id")),
        "input": inp,
        "domain": dom,
        "service": svc,
        "category_code": category_for(dom, svc),
        "probe_cc": _s(m.get("probe_cc")) or "ZZ",
        "probe_asn": asn_int(m.get("probe_asn")) or 0,
        "probe_network_name": _s(m.get("probe_network_name")),
        "resolver_asn": asn_int(m.get("resolver_asn")),
        "test_name": _s(m.get("test_name")),
        "test_version": _s(m.get("test_version")),
        "software_name": _s(m.get("software_name")),
        "software_version": _s(m.get("software_version")),
        "measurement_start_time": naive(parse_time(m.get("measurement_start_time"))),
        "test_start_time": naive(parse_time(m.get("test_start_time"))),
        "test_runtime": _f(m.get("test_runtime")),
        "received_at": naive(uid_time(uid)),
        **verdict_columns(v),
    }


def verdict_row(v: Verdict, uid: str) -> Row:
    return {
        "measurement_uid": uid,
        "report_id": v.report_id,
        "input": v.input,
        "test_name": v.test_name,
        "probe_cc": v.probe_cc,
        "probe_asn": v.probe_asn,
        "measurement_start_time": naive(parse_time(v.measurement_start_time)),
        "state": v.state,
        "rule_id": v.rule_id,
        "rules_version": v.rules_version,
        "confidence": float(v.confidence),
        "layer": v.layer,
        "method": v.method,
        "fingerprint_id": v.fingerprint_id,
        "confirmed": v.confirmed,
        "service": v.service,
        "domain": v.domain,
        "blocking": orjson.dumps(v.blocking).decode(),
        "accessible": v.accessible,
        "evidence": orjson.dumps([_ev(e) for e in v.evidence]).decode(),
        "reason": v.reason,
    }


def _ev(e: Any) -> dict[str, Any]:
    return {k: getattr(e, k) for k in ("pointer", "summary", "observed", "expected")}


def _split_hostport(address: Any) -> tuple[str | None, int | None]:
    if not isinstance(address, str) or not address:
        return None, None
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port.isdigit() else None
    if address.count(":") == 1:
        host, port = address.split(":")
        return host, int(port) if port.isdigit() else None
    return address, None


def observation_rows(m: dict[str, Any], base: Row, asn: AsnDB) -> list[Row]:
    """One row per DNS answer (or failed query), TCP connect, TLS handshake and HTTP request."""
    tk = m.get("test_keys")
    if not isinstance(tk, dict):
        return []
    common = {
        k: base[k]
        for k in (
            "measurement_uid",
            "probe_cc",
            "probe_asn",
            "test_name",
            "input",
            "domain",
            "service",
            "measurement_start_time",
        )
    }
    common["asn_db"] = asn.version
    out: list[Row] = []

    def enrich(row: Row) -> Row:
        ip = row.get("ip")
        if ip:
            info = asn.lookup(ip)
            if info is not None:
                row["ip_asn"] = info.asn
                row["ip_as_org"] = info.org
                row["ip_cc"] = info.cc
        return {**common, **row}

    def items(key: str) -> list[dict[str, Any]]:
        v = tk.get(key)
        return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []

    for i, q in enumerate(items("queries")):
        qrow: Row = {
            "layer": "dns",
            "idx": i,
            "transaction_id": _i(q.get("transaction_id")),
            "hostname": _s(q.get("hostname")),
            "query_type": _s(q.get("query_type")),
            "engine": _s(q.get("engine")),
            "resolver_address": _s(q.get("resolver_address")),
            "failure": _s(q.get("failure")),
            "t0": _f(q.get("t0")),
            "t": _f(q.get("t")),
        }
        raw_answers = q.get("answers")
        answers = (
            [a for a in raw_answers if isinstance(a, dict)] if isinstance(raw_answers, list) else []
        )
        if not answers:
            out.append(enrich({**qrow, "success": False}))
            continue
        for a in answers:
            ip = _s(a.get("ipv4")) or _s(a.get("ipv6"))
            out.append(
                enrich(
                    {
                        **qrow,
                        "answer_type": _s(a.get("answer_type")),
                        "ip": ip,
                        "server_name": _s(a.get("hostname")),
                        "success": qrow["failure"] is None,
                    }
                )
            )
    for i, c in enumerate(items("tcp_connect")):
        st: dict[str, Any] = c["status"] if isinstance(c.get("status"), dict) else {}
        out.append(
            enrich(
                {
                    "layer": "tcp",
                    "idx": i,
                    "transaction_id": _i(c.get("transaction_id")),
                    "ip": _s(c.get("ip")),
                    "port": _i(c.get("port")),
                    "failure": _s(st.get("failure")),
                    "success": st.get("success") if isinstance(st.get("success"), bool) else None,
                    "t0": _f(c.get("t0")),
                    "t": _f(c.get("t")),
                }
            )
        )
    for i, h in enumerate(items("tls_handshakes")):
        ip, port = _split_hostport(h.get("address"))
        failure = _s(h.get("failure"))
        out.append(
            enrich(
                {
                    "layer": "tls",
                    "idx": i,
                    "transaction_id": _i(h.get("transaction_id")),
                    "ip": ip,
                    "port": port,
                    "server_name": _s(h.get("server_name")),
                    "hostname": _s(h.get("server_name")),
                    "tls_version": _s(h.get("tls_version")),
                    "failure": failure,
                    "success": failure is None,
                    "t0": _f(h.get("t0")),
                    "t": _f(h.get("t")),
                }
            )
        )
    for i, r in enumerate(items("requests")):
        req: dict[str, Any] = r["request"] if isinstance(r.get("request"), dict) else {}
        resp: dict[str, Any] = r["response"] if isinstance(r.get("response"), dict) else {}
        url = _s(req.get("url"))
        ip, port = _split_hostport(r.get("address"))
        body = resp.get("body")
        blen = _i(resp.get("x_didban_body_length"))
        if blen is None and isinstance(body, str):
            blen = len(body)
        failure = _s(r.get("failure"))
        out.append(
            enrich(
                {
                    "layer": "http",
                    "idx": i,
                    "transaction_id": _i(r.get("transaction_id")),
                    "hostname": domain_of(url),
                    "url": url,
                    "ip": ip,
                    "port": port,
                    "status_code": _i(resp.get("code")),
                    "body_length": blen,
                    "failure": failure,
                    "success": failure is None,
                    "t0": _f(r.get("t0")),
                    "t": _f(r.get("t")),
                }
            )
        )
    return out
