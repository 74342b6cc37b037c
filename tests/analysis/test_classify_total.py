"""The classifier is total: arbitrary JSON-ish input, or a real measurement with any subtree
replaced by junk, always yields a well-formed verdict and never raises."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest
from analysis_builders import ctrl, q, req, tcp, tls, web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from didban.analysis import classify, rules
from didban.model.verdict import METHODS, STATES

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
KEYS = [
    "test_name",
    "input",
    "test_keys",
    "queries",
    "answers",
    "ipv4",
    "requests",
    "response",
    "body",
    "control",
    "dns",
    "addrs",
    "tcp_connect",
    "status",
    "failure",
    "tls_handshakes",
    "headers",
    "code",
    "x_dns_duplicate_responses",
    "http_request",
    "status_code",
    "targets",
    "lookups",
    "bootstrap",
]


def _check(out: Any) -> None:
    assert out.state in STATES
    assert out.rule_id in rules.ALL
    assert out.method is None or out.method in METHODS
    assert 0.0 <= out.confidence <= 1.0
    msgspec.json.encode(out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_value, max_size=6),
    st.sampled_from(
        [
            "web_connectivity",
            "whatsapp",
            "telegram",
            "signal",
            "facebook_messenger",
            "tor",
            "dnscheck",
            "ndt",
            7,
            None,
        ]
    ),
)
def test_arbitrary_records_never_raise(record: dict[str, Any], test_name: Any) -> None:
    record["test_name"] = test_name
    _check(classify(record))


BASE = web(
    "https://www.example.com/",
    queries=[q("www.example.com", ["93.184.216.34"])],
    tcp_connect=[tcp("93.184.216.34", 443)],
    tls_handshakes=[tls("93.184.216.34:443", "www.example.com")],
    requests=[req("https://www.example.com/")],
    control=ctrl(["93.184.216.34"]),
)
PATHS = [
    ("test_keys",),
    ("test_keys", "queries"),
    ("test_keys", "queries", 0),
    ("test_keys", "queries", 0, "answers"),
    ("test_keys", "tcp_connect", 0, "status"),
    ("test_keys", "tls_handshakes", 0, "failure"),
    ("test_keys", "requests", 0),
    ("test_keys", "requests", 0, "response"),
    ("test_keys", "requests", 0, "response", "body"),
    ("test_keys", "requests", 0, "response", "headers"),
    ("test_keys", "control"),
    ("test_keys", "control", "dns"),
    ("test_keys", "control", "http_request"),
    ("test_keys", "control", "tcp_connect"),
    ("input",),
    ("probe_cc",),
]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(PATHS), json_value)
def test_measurement_with_junk_subtree_never_raises(path: tuple[Any, ...], junk: Any) -> None:
    m = copy.deepcopy(BASE)
    cur: Any = m
    for key in path[:-1]:
        cur = cur[key]
    cur[path[-1]] = junk
    _check(classify(m))
    _check(classify(msgspec.json.encode(m)))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
@example(b'"\x80"')  # found by CI: msgspec raises UnicodeDecodeError for such a string
@example(b'{"test_name": "web_connectivity", "input": "\xff", "test_keys": {}}')
@example(b'{"test_name": "signal", "test_keys": {"a": "\xc3"}}')
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    _check(classify(data))


def test_a_string_that_is_not_utf8_is_malformed_with_the_reason() -> None:
    v = classify(b'{"test_name": "\x80"}')
    assert v.rule_id == "input.malformed"
    assert v.reason == "invalid JSON: a string is not UTF-8 (invalid start byte)"


@pytest.mark.parametrize(
    "value", [None, 42, [], bytearray(b"{}"), memoryview(b"[]"), {"test_name": [], "test_keys": {}}]
)
def test_anything_that_is_not_a_measurement_is_malformed_not_an_exception(value: Any) -> None:
    """``classify`` is total at run time, whatever a caller passes (a review once found
    classify(None) raising TypeError)."""
    v = classify(value)
    assert v.rule_id == "input.malformed"


def test_non_ascii_digits_in_a_port_or_a_depth_tag_are_not_a_crash() -> None:
    """``"²".isdigit()`` is true and ``int("²")`` raises: both escaped classify."""
    m = copy.deepcopy(BASE)
    m["test_keys"]["tls_handshakes"][0]["address"] = "93.184.216.34:\u00b2"  # superscript 2
    m["test_keys"]["queries"][0]["tags"] = ["depth=\u00b2"]
    m["test_keys"]["requests"][0]["failure"] = "connection_reset"
    m["test_keys"]["requests"][0]["response"] = None
    _check(classify(m))
