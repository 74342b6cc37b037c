"""Run-level verdicts: NIN isolation and shutdown, judged over one probe run's verdicts.

One measurement alone cannot tell a site blocked by IP from a country cut off from the
international internet: both are a connect that times out while the control (abroad)
connects — or, when the control abroad is cut off too, an inconclusive measurement. One run
can: when, in the same run, the domestic targets (catalog services with ``domestic: true``)
are reached while every international target failed at DNS, TCP or TLS (the control
reaching it, or the control itself unreachable with a network failure), the international
failures are relabelled ``blocked``/``ip``/``nin.isolated`` (``batch.nin.isolated``); when
the domestic targets failed the same way, ``shutdown`` (``batch.shutdown``). See
docs/methodology.md "Runs: NIN isolation and shutdown".

A *run* is the set of web_connectivity verdicts with the same ``report_id`` (one per probe
run and test, as OONI's and didban's probes write it; without one: same probe_cc, probe_asn
and measurement-start hour). ``Runs`` buffers consecutive verdicts of one run — the order
in which probes and OONI's archive write them — and judges the run when the next run
starts, when it reaches ``MAX_RUN`` verdicts, or at the end, so memory stays bounded by
``MAX_RUN`` whatever the input size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final, Generic, TypeVar

import msgspec

from didban.analysis.classify import WEB_TESTS
from didban.analysis.fingerprints import Fingerprints
from didban.analysis.records import WebMeasurement, decode_web
from didban.analysis.rules import rule
from didban.analysis.web_connectivity.facts import WebFacts
from didban.analysis.web_connectivity.throttling import THROTTLE_MIN_BODY
from didban.data import catalog
from didban.model import failures
from didban.model.verdict import Evidence, Verdict

# Throttling against the run (docs/methodology.md "Throttling"): a ``wc.throttled`` verdict
# stands only if the target was also far slower than the run's other large transfers.
RUN_RATE_MIN_SAMPLES: Final = 5  # large fetches in the run needed for a median
RUN_RATE_RATIO: Final = 0.25  # throttled: below a quarter of the run's median rate
MAX_RUN: Final = 20_000  # verdicts buffered per run before it is judged on what it has
MIN_INTERNATIONAL: Final = 3  # failed international targets needed to speak of isolation
# Failures of reachability (not of content): what isolation and shutdown look like per target.
UNREACHABLE_METHODS: Final = frozenset(
    {
        "dns.timeout",
        "dns.servfail",
        "tcp.timeout",
        "tcp.reset",
        "tcp.unreachable",
        "tls.sni.timeout",
        "tls.sni.reset",
        "tls.sni.eof",
    }
)

T = TypeVar("T")


@lru_cache(maxsize=1)
def _domestic_services() -> frozenset[str]:
    return frozenset(s.id for s in catalog.services() if s.domestic)


def is_domestic(v: Verdict) -> bool:
    return v.service is not None and v.service in _domestic_services()


def run_key(v: Verdict) -> tuple[str, ...]:
    """Which run a verdict belongs to (see the module docstring)."""
    if v.report_id:
        return ("report", v.report_id)
    return ("probe", v.probe_cc, v.probe_asn, v.measurement_start_time[:13])


NETWORK_FAILURES: Final = frozenset(
    {
        failures.GENERIC_TIMEOUT,
        failures.CONNECTION_RESET,
        failures.CONNECTION_REFUSED,
        failures.CONNECTION_ABORTED,
        failures.HOST_UNREACHABLE,
        failures.NETWORK_UNREACHABLE,
        failures.NETWORK_DOWN,
        failures.EOF_ERROR,
    }
)
DNS_FAILURES: Final = frozenset({failures.GENERIC_TIMEOUT, failures.DNS_SERVFAIL})
NO_CONTROL_CONFIDENCE: Final = 0.7  # the control abroad was unreachable too


def unreachable_without_control(data: bytes | str | WebMeasurement, fps: Fingerprints) -> bool:
    """For a ``wc.control.missing`` measurement (its bytes, or as ``decode_web`` gave it):
    the probe could not reach the control (a network failure in ``control_failure``) and
    its own fetch failed at DNS, TCP or TLS with a network failure — an international
    destination and the target both unreachable."""
    m = data if isinstance(data, WebMeasurement) else decode_web(data)
    if m is None or m.test_keys is None or not isinstance(m.input, str):
        return False
    keys = m.test_keys
    if keys.control_failure not in NETWORK_FAILURES:
        return False
    f = WebFacts(keys, m.input, fps)
    if f.final_ok:
        return False
    if f.sys_failure is not None and not f.dns_ips:
        return f.sys_failure[0] in DNS_FAILURES
    stage = f.stage()
    return stage is not None and stage.layer in ("tcp", "tls") and stage.failure in NETWORK_FAILURES


def fetch_rate(data: bytes | str | WebMeasurement) -> float | None:
    """The probe's body rate (bytes/s) of the final response (from the measurement's bytes
    or its ``decode_web``), if its body was large enough for a rate to mean anything
    (``THROTTLE_MIN_BODY``); None otherwise."""
    m = data if isinstance(data, WebMeasurement) else decode_web(data)
    if m is None or m.test_keys is None:
        return None
    keys = m.test_keys
    rate = keys.x_didban_http_throughput
    reqs = keys.requests or []
    if rate is None or rate <= 0 or not reqs or reqs[0].response is None:
        return None
    size = reqs[0].response.x_didban_body_length or 0
    return rate if size >= THROTTLE_MIN_BODY else None


def _clear_unfounded_throttling(
    verdicts: list[Verdict], rates: list[float | None]
) -> list[Verdict]:
    """Relabel ``throttled`` verdicts whose rate is not far below the run's median rate."""
    known = sorted(r for r in rates if r is not None)
    if len(known) < RUN_RATE_MIN_SAMPLES:
        return verdicts
    median = known[len(known) // 2]
    out = list(verdicts)
    for i, (v, rate) in enumerate(zip(verdicts, rates, strict=True)):
        if v.method != "throttled" or rate is None or rate < RUN_RATE_RATIO * median:
            continue
        r = rule("batch.throttled.cleared")
        why = (
            f"{rate * 8 / 1e6:.2f} Mbit/s is not far below this run's median of "
            f"{median * 8 / 1e6:.2f} Mbit/s over {len(known)} large transfers"
        )
        out[i] = msgspec.structs.replace(
            v,
            state=r.state,
            layer=None,
            method=None,
            rule_id=r.id,
            confidence=r.confidence,
            blocking=False,
            accessible=True,
            reason=f"{why}: the whole run was slow, not this target; alone: {v.reason}",
            evidence=[
                Evidence(pointer="/test_keys/x_didban_http_throughput", summary=why),
                *v.evidence,
            ],
        )
    return out


def _with_control(v: Verdict) -> bool:
    """Blocked by a reachability failure at DNS/TCP/TLS, the control succeeding, no
    fingerprint (a confirmed national blockpage answer stays what it is)."""
    return v.state == "blocked" and not v.confirmed and v.method in UNREACHABLE_METHODS


def judge(
    verdicts: list[Verdict], no_control: list[bool], rates: list[float | None] | None = None
) -> list[Verdict]:
    """The run's verdicts, international (and, for a shutdown, domestic) reachability
    failures relabelled when the run shows NIN isolation or a shutdown. ``no_control[i]``
    says verdict ``i`` is a ``wc.control.missing`` one that ``unreachable_without_control``;
    ``rates[i]`` is its large-transfer rate (``fetch_rate``), used to check ``throttled``."""
    if rates is not None:
        verdicts = _clear_unfounded_throttling(verdicts, rates)
    failing = {id(v) for v, nc in zip(verdicts, no_control, strict=True) if nc}
    failing |= {id(v) for v in verdicts if _with_control(v)}
    web = [v for v in verdicts if v.test_name in WEB_TESTS]
    domestic = [v for v in web if is_domestic(v)]
    international = [v for v in web if not is_domestic(v)]
    failed = [v for v in international if id(v) in failing]
    if not domestic or len(failed) < MIN_INTERNATIONAL:
        return verdicts
    # every international target failed to be reached: none ok, none blocked otherwise
    # than by a reachability failure or a confirmed national fingerprint (served at home)
    for v in international:
        if v.state == "ok" or (v.state == "blocked" and not v.confirmed and id(v) not in failing):
            return verdicts
    reached = [v for v in domestic if v.state == "ok"]
    if reached:
        relabel = {id(v) for v in failed}
        rid = "batch.nin.isolated"
        why = (
            f"{len(reached)} of {len(domestic)} domestic targets were reached in this run "
            f"while all {len(failed)} failed international targets were unreachable at "
            "DNS/TCP/TLS (the control reaching them, or the control abroad unreachable too): "
            "the national network is cut off from the international internet"
        )
    elif all(id(v) in failing for v in domestic):
        relabel = {id(v) for v in failed + domestic}
        rid = "batch.shutdown"
        why = (
            f"every target of this run was unreachable at DNS/TCP/TLS, domestic "
            f"({len(domestic)}) and international ({len(failed)}): a shutdown"
        )
    else:
        return verdicts
    return [_relabel(v, rid, why) if id(v) in relabel else v for v in verdicts]


def _relabel(v: Verdict, rule_id: str, why: str) -> Verdict:
    r = rule(rule_id)
    ev = Evidence(
        pointer="/report_id",
        summary=f"run-level verdict over the run's measurements ({rule_id})",
        observed=v.report_id or None,
    )
    return msgspec.structs.replace(
        v,
        state=r.state,
        layer=r.layer,
        method=r.method,
        rule_id=r.id,
        confidence=r.confidence if v.state == "blocked" else NO_CONTROL_CONFIDENCE,
        confirmed=False,
        fingerprint_id=None,
        blocking="tcp_ip",
        accessible=False,
        reason=f"{why}; this measurement alone: {v.reason}",
        evidence=[ev, *v.evidence],
    )


@dataclass
class Runs(Generic[T]):
    """Buffers ``(item, verdict)`` pairs of consecutive records of one run; ``add`` and
    ``flush`` yield them, judged, in input order."""

    _key: tuple[str, ...] | None = None
    _items: list[tuple[T, Verdict, bool, float | None]] = field(default_factory=list)

    def add(
        self, item: T, verdict: Verdict, no_control: bool = False, rate: float | None = None
    ) -> Iterator[tuple[T, Verdict]]:
        """Buffer one verdict (``no_control``, ``rate``: see ``judge``); yields a finished
        run."""
        if verdict.test_name in WEB_TESTS:
            key = run_key(verdict)
            if self._key is not None and key != self._key:
                yield from self.flush()
            self._key = key
        self._items.append((item, verdict, no_control, rate))
        if len(self._items) >= MAX_RUN:
            yield from self.flush()

    def flush(self) -> Iterator[tuple[T, Verdict]]:
        items, self._items, self._key = self._items, [], None
        judged = judge(
            [v for _, v, _, _ in items], [nc for _, _, nc, _ in items], [r for *_, r in items]
        )
        yield from ((item, v) for (item, *_), v in zip(items, judged, strict=True))
