"""Hand-built measurements for the analysis tests, in OONI's format (plain dicts, shaped like
web_connectivity 0.4.x records, or 0.5/LTE records with ``depth=N`` tags: ``lte``; any other
test around its test keys: ``measurement``) and in didban's (built from ``didban.model.ooni``
structs)."""

from __future__ import annotations

from typing import Any

import msgspec

from didban.model import ooni

IR_BLOCKPAGE = (
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'
    '<title>NTE1</title>\n</head><body><iframe src="http://10.10.34.36/?type=Invalid Keyword'
    '&policy=MainPolicy " style="width: 100%; height: 100%"></iframe></body></html>'
)
PAGE = (
    "<!doctype html><html><head><title>Example Domain for Testing Purposes</title></head>"
    "<body>" + "<p>This domain is for use in illustrative examples.</p>" * 40 + "</body></html>"
)
HEADERS = {"Content-Type": "text/html", "Server": "nginx", "X-Site-Id": "42"}


def measurement(test_name: str, test_keys: Any, input_: str | None = None) -> dict[str, Any]:
    """The envelope of one measurement of ``test_name`` from an Iranian network."""
    return {
        "test_name": test_name,
        "test_keys": test_keys,
        "input": input_,
        "report_id": "r",
        "probe_cc": "IR",
        "probe_asn": "AS44244",
        "measurement_start_time": "2026-11-21 10:00:00",
    }


def q(
    host: str,
    ips: list[str] | None = None,
    *,
    engine: str = "system",
    failure: str | None = None,
    resolver: str = "",
    qtype: str = "A",
    tags: list[str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "hostname": host,
        "query_type": qtype,
        "engine": engine,
        "resolver_address": resolver,
        "failure": failure,
        "answers": [
            {"answer_type": "AAAA" if ":" in ip else "A", ("ipv6" if ":" in ip else "ipv4"): ip}
            for ip in ips or []
        ],
        "t0": 0.0,
        "t": 0.01,
    }
    if tags is not None:
        out["tags"] = tags
    return out


def tcp(
    ip: str, port: int, failure: str | None = None, tags: list[str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ip": ip,
        "port": port,
        "status": {"success": failure is None, "failure": failure},
        "t": 0.1,
    }
    if tags is not None:
        out["tags"] = tags
    return out


def tls(
    address: str, sni: str, failure: str | None = None, tags: list[str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "network": "tcp",
        "address": address,
        "server_name": sni,
        "failure": failure,
        "t": 0.2,
    }
    if tags is not None:
        out["tags"] = tags
    return out


def req(
    url: str,
    *,
    code: int = 200,
    body: str = PAGE,
    headers: dict[str, Any] | None = None,
    failure: str | None = None,
    tags: list[str] | None = None,
    address: str | None = None,
) -> dict[str, Any]:
    response = (
        None if failure else {"code": code, "headers": headers or dict(HEADERS), "body": body}
    )
    out: dict[str, Any] = {
        "request": {"url": url, "method": "GET"},
        "response": response,
        "failure": failure,
    }
    if tags is not None:
        out["tags"] = tags
    if address is not None:
        out["address"] = address
    return out


def redirect(
    url: str, location: str, *, code: int = 302, tags: list[str] | None = None
) -> dict[str, Any]:
    """A redirect response to ``location``."""
    return req(url, code=code, body="", headers={"Location": location}, tags=tags)


def depth(n: int, *more: str) -> list[str]:
    """LTE's tags for a record of redirect hop ``n`` (``classic``, ``depth=n``, ...)."""
    return ["classic", f"depth={n}", *more]


def ctrl(
    addrs: list[str] | None = None,
    *,
    dns_failure: str | None = None,
    tcp: dict[str, bool] | None = None,
    tls: dict[str, bool] | None = None,
    ip_info: dict[str, tuple[int, int]] | None = None,
    status: int = 200,
    body_length: int = len(PAGE),
    title: str = "Example Domain for Testing Purposes",
    http_failure: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "dns": {"failure": dns_failure, "addrs": addrs if addrs is not None else ["93.184.216.34"]},
        "tcp_connect": {
            k: {"status": v, "failure": None if v else "generic_timeout_error"}
            for k, v in (tcp or {}).items()
        },
        "tls_handshake": {
            k: {"server_name": "", "status": v, "failure": None if v else "connection_reset"}
            for k, v in (tls or {}).items()
        },
        "http_request": {
            "status_code": -1 if http_failure else status,
            "body_length": -1 if http_failure else body_length,
            "title": title,
            "headers": headers or dict(HEADERS),
            "failure": http_failure,
        },
        "ip_info": {
            ip: {"asn": asn, "flags": flags} for ip, (asn, flags) in (ip_info or {}).items()
        },
    }


def web(
    url: str,
    *,
    queries: list[dict[str, Any]] | None = None,
    tcp_connect: list[dict[str, Any]] | None = None,
    tls_handshakes: list[dict[str, Any]] | None = None,
    requests: list[dict[str, Any]] | None = None,
    control: dict[str, Any] | None = None,
    control_failure: str | None = None,
    dups: list[dict[str, Any]] | None = None,
    cc: str = "IR",
    version: str = "0.4.3",
    http_failure: str | None = None,
) -> dict[str, Any]:
    """An OONI web_connectivity measurement with the given test keys."""
    return {
        "test_name": "web_connectivity",
        "test_version": version,
        "input": url,
        "report_id": "20261121T100000Z_webconnectivity_IR_197207_n1_test",
        "measurement_start_time": "2026-11-21 10:00:00",
        "probe_cc": cc,
        "probe_asn": "AS197207",
        "data_format_version": "0.2.0",
        "software_name": "ooniprobe",
        "software_version": "3.20.0",
        "test_keys": {
            "queries": queries or [],
            "tcp_connect": tcp_connect or [],
            "tls_handshakes": tls_handshakes or [],
            "requests": requests or [],
            "control": control,
            "control_failure": control_failure,
            "x_dns_duplicate_responses": dups or [],
            "http_experiment_failure": http_failure,
        },
    }


def lte(url: str, **keys: Any) -> dict[str, Any]:
    """An OONI web_connectivity 0.5 (LTE) measurement: ``web`` with LTE's version (give the
    records their ``depth=N`` tags with ``depth``)."""
    return web(url, version="0.5.28", **keys)


UDP = "8.8.8.8:53"
DOH = "https://dns.google/dns-query"


def lte_queries(
    host: str,
    system: list[str] | None,
    udp: list[str] | None,
    doh: list[str] | None = None,
    *,
    system_failure: str | None = None,
    udp_failure: str | None = None,
    doh_failure: str | None = None,
    hop: int = 0,
) -> list[dict[str, Any]]:
    """LTE's lookups of one host: getaddrinfo (ANY), DNS over UDP to 8.8.8.8, and DoH when
    ``doh`` or ``doh_failure`` is given."""
    out = [
        q(host, system, engine="getaddrinfo", failure=system_failure, qtype="ANY",
          tags=depth(hop)),
        q(host, udp, engine="udp", resolver=UDP, failure=udp_failure, tags=[f"depth={hop}"]),
    ]  # fmt: skip
    if doh is not None or doh_failure is not None:
        out.append(
            q(host, doh, engine="doh", resolver=DOH, failure=doh_failure, tags=[f"depth={hop}"])
        )
    return out


def didban_web(url: str, tk: ooni.WebConnectivityTestKeys) -> dict[str, Any]:
    """A measurement as didban's probe writes it (model structs), as a plain dict."""
    m = ooni.Measurement(
        test_name="web_connectivity",
        test_version="0.5.28",
        input=url,
        report_id="20261121T100000Z_webconnectivity_IR_197207_n1_didban",
        measurement_start_time="2026-11-21 10:00:00",
        test_start_time="2026-11-21 10:00:00",
        probe_cc="IR",
        probe_asn="AS197207",
        test_keys=tk,
    )
    out: dict[str, Any] = msgspec.to_builtins(m)
    return out


def blocked_instagram() -> dict[str, Any]:
    return web(
        "https://www.instagram.com/",
        queries=[q("www.instagram.com", ["10.10.34.35"])],
        control=ctrl(["157.240.1.174"]),
    )


def ok_page() -> dict[str, Any]:
    return web(
        "http://www.example.com/",
        queries=[q("www.example.com", ["93.184.216.34"])],
        tcp_connect=[tcp("93.184.216.34", 80)],
        requests=[req("http://www.example.com/")],
        control=ctrl(["93.184.216.34"]),
    )


def jsonl(*records: Any) -> bytes:
    """The records as JSONL bytes."""
    return b"".join(msgspec.json.encode(r) + b"\n" for r in records)
