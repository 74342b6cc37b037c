"""The throttling rule (``wc.throttled``): a large page read far slower than the control read
it, below an absolute ceiling, is ``blocked`` at layer ``ip`` with method ``throttled``; small
pages, missing rates and merely slower links are not."""

from __future__ import annotations

from typing import Any

import pytest
from analysis_builders import ctrl, q, req, tcp, tls, web

from didban.analysis import classify

HOST = "www.youtube.com"
IP = "203.0.113.20"
URL = f"https://{HOST}/"
BIG = "<!doctype html><html><head><title>YouTube</title></head><body>" + "v" * 60_000 + "</body>"


def measured(
    probe_rate: float | None,
    ctrl_rate: float | None,
    *,
    body: str = BIG,
    ctrl_length: int | None = None,
) -> dict[str, Any]:
    control = ctrl([IP], tcp={f"{IP}:443": True}, tls={f"{IP}:443": True}, title="YouTube")
    control["http_request"]["body_length"] = len(body) if ctrl_length is None else ctrl_length
    if ctrl_rate is not None:
        control["http_request"]["x_didban_throughput"] = ctrl_rate
    m = web(
        URL,
        queries=[q(HOST, [IP])],
        tcp_connect=[tcp(IP, 443)],
        tls_handshakes=[tls(f"{IP}:443", HOST)],
        requests=[req(URL, body=body)],
        control=control,
    )
    if probe_rate is not None:
        m["test_keys"]["x_didban_http_throughput"] = probe_rate
    return m


def test_large_page_far_below_the_control_rate_is_throttled() -> None:
    # 1 Mbit/s (the lab's shaper) against a 40 Mbit/s control
    out = classify(measured(125_000, 5_000_000))
    assert (out.state, out.layer, out.method, out.rule_id) == (
        "blocked",
        "ip",
        "throttled",
        "wc.throttled",
    )
    assert (out.blocking, out.accessible) == ("tcp_ip", False)
    ev = out.evidence[0]
    assert ev.pointer == "/test_keys/x_didban_http_throughput"
    assert (ev.observed, ev.expected) == ("125000", "5000000")
    ratio = out.evidence[1]
    assert ratio.pointer == "/test_keys/control/http_request/x_didban_throughput"
    assert (ratio.observed, ratio.expected) == ("0.025", "< 0.25")
    assert "1.00 Mbit/s" in out.reason
    # the lab's control, slowed by the cores it shares, read 96 KB at 1.2 MB/s: still 8x
    assert classify(measured(158_000, 1_208_000)).rule_id == "wc.throttled"


@pytest.mark.parametrize(
    ("probe_rate", "ctrl_rate", "why"),
    [
        (125_000, 400_000, "31 % of the control: above the 25 % ratio"),
        (400_000, 50_000_000, "under 25 % but above the 2 Mbit/s ceiling"),
        (None, 5_000_000, "the probe recorded no rate (OONI's probes do not)"),
        (125_000, None, "the control measured no rate (OONI's helper does not)"),
    ],
)
def test_no_throttling_verdict_without_clear_evidence(
    probe_rate: float | None, ctrl_rate: float | None, why: str
) -> None:
    out = classify(measured(probe_rate, ctrl_rate))
    assert (out.state, out.rule_id) == ("ok", "wc.https.ok"), why


def test_small_pages_are_too_short_to_measure_a_rate() -> None:
    small = "<html><head><title>YouTube</title></head><body>" + "v" * 20_000 + "</body>"
    assert classify(measured(10_000, 5_000_000, body=small)).rule_id == "wc.https.ok"
    # the probe's page is large but the control's is small: no comparable transfer
    assert classify(measured(10_000, 5_000_000, ctrl_length=4_000)).rule_id == "wc.https.ok"


def _run_file(tmp_path: Any, rates: list[tuple[float, float]]) -> list[Any]:
    import msgspec

    from didban.analysis import classify_paths

    path = tmp_path / "run.jsonl"
    with path.open("wb") as f:
        for probe_rate, ctrl_rate in rates:
            m = measured(probe_rate, ctrl_rate)
            m["report_id"] = "20261121T000000Z_webconnectivity_IR_197207_n1_run"
            m["test_keys"]["requests"][0]["response"]["x_didban_body_length"] = len(BIG)
            f.write(msgspec.json.encode(m) + b"\n")
    return [v for _, v in classify_paths([path], on_error=lambda e: None)]


def test_a_run_where_everything_is_slow_is_not_throttling(tmp_path: Any) -> None:
    # The probe's own CPU or link is slow: every page at ~1 Mbit/s against a fast control.
    verdicts = _run_file(tmp_path, [(125_000 + i * 5_000, 5_000_000) for i in range(6)])
    assert {(v.state, v.rule_id) for v in verdicts} == {("ok", "batch.throttled.cleared")}
    assert "median" in verdicts[0].reason


def test_one_target_far_slower_than_the_rest_of_the_run_stays_throttled(tmp_path: Any) -> None:
    fast = [(4_000_000, 5_000_000)] * 5
    verdicts = _run_file(tmp_path, [*fast, (125_000, 5_000_000)])
    assert [v.method for v in verdicts] == [None] * 5 + ["throttled"]
    assert verdicts[-1].rule_id == "wc.throttled"
