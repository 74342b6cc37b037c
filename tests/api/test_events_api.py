"""The event endpoints and the Atom feeds over saved events, as an HTTP client sees them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import msgspec
import pytest
from fastapi.testclient import TestClient

from didban.events import atom
from didban.events.record import Event
from didban.events.saved import Coverage, EventTable
from didban.store.store import Store

A = "{http://www.w3.org/2005/Atom}"
RUN1, RUN2 = datetime(2026, 3, 8, 12), datetime(2026, 3, 9, 12)


def _event(eid: str, **kw: object) -> Event:
    fields: dict[str, object] = {
        "id": eid,
        "kind": "block",
        "cc": "IR",
        "asns": [44244, 197207],
        "target": "instagram",
        "layer": "tls",
        "method": "tls.sni.reset",
        "onset_after": "2026-03-06T00:00:00Z",
        "onset_before": "2026-03-06T01:00:00Z",
        "resolved_after": None,
        "resolved_before": None,
        "confidence": 0.99,
        "n_measurements": 120,
        "n_probes": 12,
        "witnesses": ["20260306003000.000001_IR_webconnectivity_44244"],
        "source": "didban",
        "known_event": None,
        **kw,
    }
    return msgspec.convert(fields, Event)


INSTAGRAM = _event("ev-00000000000000a1", known_event="ir-21")
TELEGRAM = _event(
    "ev-00000000000000a2",
    target="www.telegram.org",
    asns=[58224],
    onset_after="2026-03-02T00:00:00Z",
    onset_before="2026-03-02T01:00:00Z",
    resolved_after="2026-03-03T00:00:00Z",
    resolved_before="2026-03-03T01:00:00Z",
)
SHUTDOWN = _event(
    "ev-00000000000000a3",
    kind="shutdown",
    target=None,
    layer=None,
    method=None,
    onset_after="2026-03-07T10:00:00Z",
    onset_before="2026-03-07T11:00:00Z",
    witnesses=[],
)
TURKMEN = _event("ev-00000000000000a4", cc="TM", asns=[20661], target="youtube")
ARTEFACT = _event("ev-00000000000000a5", target="twitter", confidence=0.2)


@pytest.fixture
def saved(store: Store) -> Path:
    with EventTable(store.dir) as table:
        table.save([INSTAGRAM, TELEGRAM, SHUTDOWN, TURKMEN, ARTEFACT], Coverage("didban"), RUN1)
    return store.dir


def _ids(body: dict[str, object]) -> list[str]:
    results = body["results"]
    assert isinstance(results, list)
    return [r["id"] for r in results]


def test_no_saved_events_is_an_empty_list_not_an_error(client: TestClient) -> None:
    r = client.get("/api/v1/events")
    assert r.status_code == 200
    assert r.json() == {
        "metadata": {"count": 0, "limit": 100, "offset": 0, "next_url": None},
        "results": [],
    }


def test_list_newest_first_with_urls_and_history(client: TestClient, saved: Path) -> None:
    r = client.get("/api/v1/events")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    # newest onset first; the artefact (confidence 0.2) is below the default 0.5
    assert _ids(body) == [SHUTDOWN.id, INSTAGRAM.id, TURKMEN.id, TELEGRAM.id]
    assert body["metadata"]["count"] == 4
    first = body["results"][1]
    assert first["url"] == f"http://testserver/api/v1/events/{INSTAGRAM.id}"
    assert first["first_seen"] == first["updated"] == "2026-03-08T12:00:00Z"
    assert first["retracted"] is None
    assert {k: first[k] for k in msgspec.structs.asdict(INSTAGRAM)} == msgspec.to_builtins(
        INSTAGRAM
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("probe_cc=TM", [TURKMEN.id]),
        ("probe_cc=IR,TM&kind=shutdown", [SHUTDOWN.id]),
        ("probe_asn=AS58224", [TELEGRAM.id]),
        ("probe_asn=58224,20661", [TURKMEN.id, TELEGRAM.id]),
        ("service=telegram", [TELEGRAM.id]),  # a domain event matches its catalog service
        ("domain=www.instagram.com", [INSTAGRAM.id]),  # a domain matches its service's events
        ("kind=block&since=2026-03-04", [INSTAGRAM.id, TURKMEN.id]),  # telegram ended on the 3rd
        ("until=2026-03-05T00:00:00Z", [TELEGRAM.id]),
        ("min_confidence=0&service=twitter", [ARTEFACT.id]),
    ],
)
def test_filters_as_the_aggregation_plus_kind(
    client: TestClient, saved: Path, query: str, expected: list[str]
) -> None:
    r = client.get(f"/api/v1/events?{query}")
    assert r.status_code == 200, r.text
    assert _ids(r.json()) == expected


def test_pages(client: TestClient, saved: Path) -> None:
    r = client.get("/api/v1/events?limit=3")
    body = r.json()
    assert len(body["results"]) == 3 and body["metadata"]["count"] == 4
    assert body["metadata"]["next_url"].endswith("limit=3&offset=3")
    last = client.get(body["metadata"]["next_url"]).json()
    assert _ids(last) == [TELEGRAM.id] and last["metadata"]["next_url"] is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("probe_cc=iran", "probe_cc must be two-letter country codes like 'IR', not 'iran'"),
        ("probe_asn=ASX", "probe_asn must be AS numbers like 'AS197207' or '197207', not 'ASX'"),
        ("kind=blocked", "kind must be event kinds (block, unblock, shutdown, outage, nin)"),
        ("since=yesterday", "since must be a date (YYYY-MM-DD) or an ISO 8601 time"),
        ("since=2026-03-05&until=2026-03-01", "since must not be after until"),
        ("limit=0", "limit must be between 1 and 1000, not 0"),
        ("min_confidence=2", "min_confidence must be between 0 and 1, not 2.0"),
    ],
)
def test_bad_filters_are_400_with_one_sentence(
    client: TestClient, saved: Path, query: str, message: str
) -> None:
    r = client.get(f"/api/v1/events?{query}")
    assert r.status_code == 400
    assert r.json()["detail"].startswith(message)


def test_one_event_with_witnesses_and_its_known_event(client: TestClient, saved: Path) -> None:
    r = client.get(f"/api/v1/events/{INSTAGRAM.id}")
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == INSTAGRAM.id and body["target"] == "instagram"
    (w,) = body["witness_measurements"]
    uid = INSTAGRAM.witnesses[0]
    assert w == {
        "measurement_uid": uid,
        "measurement_url": f"http://testserver/api/v1/measurement/{uid}",
    }
    assert body["known"]["id"] == "ir-21" and "Instagram" in body["known"]["description"]
    assert body["known"]["source"]


@pytest.mark.parametrize("event_id", ["ev-0000000000000fff", "ev-nope", "anything"])
def test_an_unknown_event_is_404_with_one_sentence(
    client: TestClient, saved: Path, event_id: str
) -> None:
    r = client.get(f"/api/v1/events/{event_id}")
    assert r.status_code == 404
    assert r.json() == {"detail": r.json()["detail"]}
    assert r.json()["detail"].startswith(f"there is no event '{event_id}'")


def test_a_retracted_event_still_answers_by_id_and_leaves_the_list(
    client: TestClient, saved: Path
) -> None:
    with EventTable(saved) as table:
        table.save([INSTAGRAM], Coverage("didban", complete=True), RUN2)
    assert _ids(client.get("/api/v1/events").json()) == [INSTAGRAM.id]
    gone = client.get(f"/api/v1/events/{SHUTDOWN.id}")
    assert gone.status_code == 200 and gone.json()["retracted"] == "2026-03-09T12:00:00Z"


def test_timeline_puts_known_and_detected_events_on_one_axis(
    client: TestClient, saved: Path
) -> None:
    r = client.get("/api/v1/timeline?probe_cc=IR&service=instagram")
    assert r.status_code == 200
    body = r.json()
    assert body["probe_cc"] == "IR" and body["since"] is None
    origins = {(e["origin"], e["id"]) for e in body["entries"]}
    assert ("detected", INSTAGRAM.id) in origins and ("known", "ir-21") in origins
    assert all("instagram" in e["targets"] for e in body["entries"])
    starts = [e["start"] for e in body["entries"]]
    assert starts == sorted(starts)
    detected = next(e for e in body["entries"] if e["id"] == INSTAGRAM.id)
    assert detected["url"].endswith(f"/api/v1/events/{INSTAGRAM.id}")
    assert detected["known_event"] == "ir-21"
    window = client.get("/api/v1/timeline?probe_cc=IR&since=2026-03-01&until=2026-04-01").json()
    detected_ids = {e["id"] for e in window["entries"] if e["origin"] == "detected"}
    assert detected_ids == {INSTAGRAM.id, TELEGRAM.id, SHUTDOWN.id}
    known = [e for e in window["entries"] if e["origin"] == "known"]
    assert known and all(e["end"] is None or e["end"] >= "2026-03-01" for e in known)
    assert window["since"] == "2026-03-01T00:00:00Z"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "probe_cc: Field required"),
        ("probe_cc=IR,TM", "probe_cc is required: one country code"),
        ("probe_cc=IR&until=nope", "until must be a date"),
    ],
)
def test_timeline_refusals(client: TestClient, query: str, message: str) -> None:
    r = client.get(f"/api/v1/timeline?{query}")
    assert r.status_code == 400 and r.json()["detail"].startswith(message)


def _feed(client: TestClient, path: str) -> ET.Element:
    r = client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/atom+xml"
    root = ET.fromstring(r.content)  # a real XML parser (expat)
    _check_atom(root)
    return root


def _check_atom(feed: ET.Element) -> None:
    """What RFC 4287 requires of a feed and its entries (§4.1.1, §4.1.2, §3.3, §4.2.7)."""
    assert feed.tag == f"{A}feed"
    for tag in ("id", "title", "updated"):
        assert len(feed.findall(f"{A}{tag}")) == 1, tag
    assert feed.find(f"{A}author/{A}name") is not None  # entries inherit it
    self_link = [x for x in feed.findall(f"{A}link") if x.get("rel") == "self"]
    assert len(self_link) == 1 and self_link[0].get("type") == atom.MEDIA_TYPE
    ids = [e.findtext(f"{A}id") for e in feed.findall(f"{A}entry")]
    assert len(ids) == len(set(ids))
    for entry in feed.findall(f"{A}entry"):
        for tag in ("id", "title", "updated"):
            assert len(entry.findall(f"{A}{tag}")) == 1, tag
        for tag in ("updated", "published"):
            datetime.fromisoformat(entry.findtext(f"{A}{tag}", ""))  # RFC 3339 date-time
        alternates = [x for x in entry.findall(f"{A}link") if x.get("rel") == "alternate"]
        assert len(alternates) == 1 and alternates[0].get("href", "").startswith("http")
        assert (entry.findtext(f"{A}id") or "").startswith("urn:uuid:")


def _attr(element: ET.Element, path: str, name: str) -> str:
    found = element.find(path)
    assert found is not None, path
    return found.get(name, "")


def _entries(feed: ET.Element) -> dict[str, ET.Element]:
    """Entries by the event id their link names."""
    return {_attr(e, f"{A}link", "href").rsplit("/", 1)[1]: e for e in feed.findall(f"{A}entry")}


def test_the_feed_of_every_event(client: TestClient, saved: Path) -> None:
    feed = _feed(client, "/feeds/events.atom")
    entries = _entries(feed)
    assert set(entries) == {INSTAGRAM.id, TELEGRAM.id, SHUTDOWN.id, TURKMEN.id}  # no artefact
    e = entries[INSTAGRAM.id]
    assert e.findtext(f"{A}id") == atom.entry_id(INSTAGRAM.id)
    assert e.findtext(f"{A}title") == "block of instagram in IR (tls.sni.reset)"
    assert _attr(e, f"{A}category", "term") == "block"
    summary = e.findtext(f"{A}summary") or ""
    assert "AS44244, AS197207" in summary and "ongoing" in summary and "ir-21" in summary
    assert e.findtext(f"{A}published") == "2026-03-08T12:00:00Z"
    assert feed.findtext(f"{A}updated") == "2026-03-08T12:00:00Z"
    assert feed.findtext(f"{A}id", "").startswith("urn:uuid:")


def test_entries_keep_their_ids_and_show_an_end_as_an_update(
    client: TestClient, saved: Path
) -> None:
    before = _feed(client, "/feeds/country/IR.atom")
    ended = msgspec.structs.replace(
        INSTAGRAM, resolved_after="2026-03-08T00:00:00Z", resolved_before="2026-03-08T01:00:00Z"
    )
    with EventTable(saved) as table:
        table.save([ended], Coverage("didban"), RUN2)
    after = _feed(client, "/feeds/country/IR.atom")
    assert before.findtext(f"{A}id") == after.findtext(f"{A}id")
    first = after.findall(f"{A}entry")[0]  # the most recently changed comes first
    assert first.findtext(f"{A}id") == atom.entry_id(INSTAGRAM.id)
    assert first.findtext(f"{A}updated") == "2026-03-09T12:00:00Z"
    assert first.findtext(f"{A}published") == "2026-03-08T12:00:00Z"
    assert "ended after 2026-03-08T00:00:00Z" in (first.findtext(f"{A}summary") or "")
    assert after.findtext(f"{A}updated") == "2026-03-09T12:00:00Z"


def test_country_and_target_feeds_carry_their_own_entries(client: TestClient, saved: Path) -> None:
    assert set(_entries(_feed(client, "/feeds/country/TM.atom"))) == {TURKMEN.id}
    assert set(_entries(_feed(client, "/feeds/country/IR.atom"))) == {
        INSTAGRAM.id,
        TELEGRAM.id,
        SHUTDOWN.id,
    }
    assert set(_entries(_feed(client, "/feeds/target/instagram.atom"))) == {INSTAGRAM.id}
    by_domain = _feed(client, "/feeds/target/www.instagram.com.atom")
    assert set(_entries(by_domain)) == {INSTAGRAM.id}
    assert by_domain.findtext(f"{A}title") == "didban: events of www.instagram.com"
    self_href = next(x.get("href") for x in by_domain.findall(f"{A}link") if x.get("rel") == "self")
    assert self_href == "http://testserver/feeds/target/www.instagram.com.atom"
    alt = next(x.get("href") for x in by_domain.findall(f"{A}link") if x.get("rel") == "alternate")
    listing = client.get(alt or "")
    assert _ids(listing.json()) == [INSTAGRAM.id]  # the JSON of the same selection


def test_an_empty_feed_is_valid(client: TestClient) -> None:
    feed = _feed(client, "/feeds/target/signal.atom")
    assert feed.findall(f"{A}entry") == [] and feed.findtext(f"{A}updated") == atom.EPOCH


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/feeds/country/iran.atom", 400, "two-letter country codes like 'IR', not 'iran'"),
        ("/feeds/target/bad target!.atom", 400, "a target is a service id or a domain"),
        ("/feeds/nothing.atom", 404, "Not Found"),
    ],
)
def test_bad_feed_paths(client: TestClient, path: str, status: int, message: str) -> None:
    r = client.get(path)
    assert r.status_code == status and message in r.json()["detail"]


def test_openapi_types_every_answer(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    listing = paths["/api/v1/events"]["get"]["responses"]
    assert listing["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/EventList")
    assert listing["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/Problem")
    one = paths["/api/v1/events/{event_id}"]["get"]["responses"]
    assert one["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/EventDetail")
    assert one["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/Problem")
    timeline = paths["/api/v1/timeline"]["get"]
    assert timeline["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Timeline"
    )
    assert any(p["name"] == "probe_cc" and p["required"] for p in timeline["parameters"])
    for path in ("/feeds/events.atom", "/feeds/country/{probe_cc}.atom"):
        content = paths[path]["get"]["responses"]["200"]["content"]
        assert list(content) == [atom.MEDIA_TYPE]
    kinds = next(p for p in paths["/api/v1/events"]["get"]["parameters"] if p["name"] == "kind")
    assert "shutdown" in kinds["schema"]["pattern"]
    fields = set(spec["components"]["schemas"]["EventRecord"]["properties"])
    assert set(msgspec.structs.asdict(INSTAGRAM)) <= fields  # the public format, whole
