"""One measurement in, one verdict out: decoding, dispatch by test name, verdict assembly.

``classify`` is total: whatever it is given (bytes, str or a dict; OONI's or didban's;
partial, malformed, or of a test without rules; at run time even something of another
type) it returns a ``Verdict`` and never raises.
``classify_record`` is the same for callers that want to report malformed records
themselves (``didban analyze``): it raises ``Malformed`` with one sentence instead.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from didban.analysis import apps, http3, im, urls
from didban.analysis.fingerprints import Fingerprints, default
from didban.analysis.outcome import Hit, build
from didban.analysis.records import (
    NULL,
    DNSCheckKeys,
    Envelope,
    WebKeys,
    WebMeasurement,
    decode_envelope,
    decode_keys,
    decode_web,
)
from didban.analysis.rules import rule
from didban.analysis.web_connectivity.cascade import classify_web
from didban.model.verdict import NOT_A_MEASUREMENT, Evidence, Verdict

WEB_TESTS: Final = frozenset({"web_connectivity", "web_connectivity@v0.5"})

Measurement = bytes | str | dict[str, Any]
"""One measurement: its JSON (bytes or text), or the decoded object."""


class Malformed(ValueError):
    """A record that is not a measurement at all (broken JSON, not an object, no test_name,
    nested deeper than the decoder can follow)."""


TOO_DEEP: Final = (
    "the record nests objects and arrays too deeply to be read (real measurements nest "
    "about 10 levels)"
)


def _is_web(test_name: Any) -> bool:
    return isinstance(test_name, str) and test_name in WEB_TESTS


def _domain(url: Any) -> str | None:
    return urls.info(url).domain if isinstance(url, str) else None


def _to_bytes(measurement: Measurement) -> bytes | str:
    if isinstance(measurement, bytes | str):
        return measurement
    try:
        return msgspec.json.encode(measurement)
    except (TypeError, ValueError, OverflowError) as exc:
        raise Malformed(f"not JSON-serialisable: {exc}") from None


def classify_record(measurement: Measurement, fingerprints: Fingerprints | None = None) -> Verdict:
    """The verdict for one measurement; raises ``Malformed`` if it is not a measurement."""
    return classify_decoded(measurement, fingerprints)[0]


def classify_decoded(
    measurement: Measurement, fingerprints: Fingerprints | None = None
) -> tuple[Verdict, WebMeasurement | None]:
    """``classify_record``, plus the web measurement as decoded for it (None for other
    tests and for records that needed the lenient path), so a caller that reads more of
    it (the run-level pass) does not decode the bytes a second time."""
    try:
        return _classify_decoded(measurement, fingerprints)
    except UnicodeDecodeError as exc:  # msgspec's decoders raise it for a non-UTF-8 string
        raise Malformed(f"invalid JSON: a string is not UTF-8 ({exc.reason})") from None
    except RecursionError:  # msgspec decodes (and skips) nested values by recursion
        raise Malformed(TOO_DEEP) from None


def _classify_decoded(
    measurement: Measurement, fingerprints: Fingerprints | None
) -> tuple[Verdict, WebMeasurement | None]:
    data = _to_bytes(measurement)
    fps = fingerprints or default()
    fast = decode_web(data)
    if fast is not None and fast.test_keys is not None and _is_web(fast.test_name):
        url = fast.input if isinstance(fast.input, str) else ""
        hit = classify_web(fast.test_keys, url, fps)
        return build(hit, fast, web=True, domain=_domain(url)), fast
    try:
        env = decode_envelope(data)
    except msgspec.DecodeError as exc:
        raise Malformed(f"invalid JSON: {exc}") from None
    if (
        env.test_keys == NULL
        and isinstance(env.rule_id, str)
        and isinstance(env.rules_version, str)
    ):
        raise Malformed(NOT_A_MEASUREMENT)
    if not isinstance(env.test_name, str) or not env.test_name:
        raise Malformed("no test_name: not an OONI measurement")
    return classify_envelope(env, fps), None


def classify_envelope(env: Envelope, fps: Fingerprints) -> Verdict:
    name = env.test_name
    if name in WEB_TESTS:
        url = env.input if isinstance(env.input, str) else ""
        keys = decode_keys(env.test_keys, WebKeys)
        hit = classify_web(keys, url, fps)
        return build(hit, env, web=True, domain=_domain(url))
    if name == "dnscheck":
        hit = apps.dnscheck(decode_keys(env.test_keys, DNSCheckKeys), fps)
        return build(hit, env, web=False, domain=_domain(env.input))
    fn = im.APP_TESTS.get(name)
    if fn is not None or name == "urlgetter":
        try:
            keys = msgspec.json.decode(env.test_keys)
        except msgspec.DecodeError:  # pragma: no cover - the envelope already parsed
            keys = None
        if name == "urlgetter":  # judged only as an HTTP/3 test (didban's, or OONI's)
            if http3.is_http3(keys):
                return build(http3.http3(keys, fps), env, web=False, domain=_domain(env.input))
        elif not isinstance(keys, dict):
            hit = Hit(
                rule("app.missing_keys"),
                "the measurement has no test_keys object",
                [Evidence(pointer="/test_keys", summary="missing or not an object")],
            )
            return build(hit, env, web=False, service=apps.APP_SERVICE.get(name))
        elif fn is not None:
            hit = fn(keys, fps)
            domain = _domain(env.input) if name == "stunreachability" else None
            return build(hit, env, web=False, service=apps.APP_SERVICE.get(name), domain=domain)
    hit = Hit(
        rule("unsupported.test"),
        f"didban has no rules for the {name!r} test",
        [Evidence(pointer="/test_name", summary="test name", observed=name)],
    )
    return build(hit, env, web=False, domain=_domain(env.input))


def classify(measurement: Measurement, fingerprints: Fingerprints | None = None) -> Verdict:
    """The verdict for one measurement (bytes, str or dict; anything else is malformed).
    Never raises."""
    try:
        return classify_record(measurement, fingerprints)
    except Malformed as exc:
        return malformed_verdict(str(exc), measurement)


def malformed_verdict(reason: str, measurement: object = None) -> Verdict:
    meta: dict[str, Any] = measurement if isinstance(measurement, dict) else {}

    def field(name: str) -> str:
        v = meta.get(name)
        return v if isinstance(v, str) else ""

    hit = Hit(
        rule("input.malformed"),
        reason,
        [Evidence(pointer="", summary="the record", observed=reason)],
    )
    env = Envelope(
        test_name=field("test_name"),
        report_id=field("report_id"),
        input=meta.get("input") if isinstance(meta.get("input"), str) else None,
        probe_cc=field("probe_cc"),
        probe_asn=field("probe_asn"),
        measurement_start_time=field("measurement_start_time"),
    )
    return build(hit, env, web=False)
