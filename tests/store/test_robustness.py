"""Foreign measurements of any shape: deriving rows never raises, ingest never dies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import measurement

from didban.data.ipasn import default_db
from didban.store import rows
from didban.store.ingest import ingest
from didban.store.store import Store

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
keys = st.sampled_from(
    ["queries", "tcp_connect", "tls_handshakes", "requests", "answers", "status", "request",
     "response", "address", "ip", "failure", "code", "body"]
)  # fmt: skip
test_keys = st.dictionaries(keys, json_values | st.lists(st.dictionaries(keys, json_values)))


@settings(max_examples=40, deadline=None)
@given(tk=test_keys, inp=json_values, cc=json_values, start=json_values)
def test_rows_accept_any_shape(tk: dict[str, Any], inp: Any, cc: Any, start: Any) -> None:
    m = {**measurement(1), "test_keys": tk, "input": inp, "probe_cc": cc,
         "measurement_start_time": start}  # fmt: skip
    uid = "20261101100000.000000_IR_webconnectivity_00ff00ff00ff00ff"
    base = rows.measurement_row(m, uid, None)
    assert base["failure"] is True  # no verdict is never ok
    for r in rows.observation_rows(m, base, default_db()):
        assert r["layer"] in ("dns", "tcp", "tls", "http")


@settings(max_examples=10, deadline=None)
@given(lines=st.lists(st.binary(max_size=40), max_size=8))
def test_ingest_survives_garbage_lines(tmp_path_factory: Any, lines: list[bytes]) -> None:
    d: Path = tmp_path_factory.mktemp("g")
    f = d / "g.jsonl"
    f.write_bytes(b"\n".join([*(line.replace(b"\n", b" ") for line in lines), b"{}"]) + b"\n")
    s = Store(d / "data", classifier=None)
    try:
        rep = ingest(s, [f])
        assert rep.added == 0 and len(rep.bad) == rep.records
    finally:
        s.close()
