"""Hand-built measurements for the analysis tests, in OONI's format (plain dicts, shaped like
web_connectivity 0.4.x records) and in didban's (built from ``didban.model.ooni`` structs)."""

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


def q(
    host: str,
    ips: list[str] | None = None,
    *,
    engine: str = "system",
    failure: str | None = None,
    resolver: str = "",
    qtype: str = "A",
) -> dict[str, Any]:
    return {
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


def tcp(ip: str, port: int, failure: str | None = None) -> dict[str, Any]:
    return {
        "ip": ip,
        "port": port,
        "status": {"success": failure is None, "failure": failure},
        "t": 0.1,
    }


def tls(address: str, sni: str, failure: str | None = None) -> dict[str, Any]:
    return {"network": "tcp", "address": address, "server_name": sni, "failure": failure, "t": 0.2}


def req(
    url: str,
    *,
    code: int = 200,
    body: str = PAGE,
    headers: dict[str, Any] | None = None,
    failure: str | None = None,
) -> dict[str, Any]:
    response = (
        None if failure else {"code": code, "headers": headers or dict(HEADERS), "body": body}
    )
    return {"request": {"url": url, "method": "GET"}, "response": response, "failure": failure}


def ctrl(
    addrs: list[str] | None = None,
    *,
    dns_failure: str | None = None,
    tcp: dict[str, bool] | None = None,
    tls: dict[str, bool] | None = None,
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
) -> dict[str, Any]:
    """An OONI web_connectivity measurement with the given test keys."""
    return {
        "test_name": "web_connectivity",
        "test_version": "0.4.3",
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
        },
    }


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
