"""Atom 1.0 feeds of saved events (RFC 4287): a pure function of the rows, no I/O.

A feed is one ``atom:feed`` with its ``id`` (a ``urn:uuid`` derived from the feed's URL,
so it never changes for one deployment), ``title``, ``updated`` (the latest entry's, else
the last detection run's), an author, a ``self`` link and an ``alternate`` link to the same
selection as JSON. Each event is one ``atom:entry``:

* ``id`` — ``urn:uuid:`` + a name-based UUID (RFC 4122 §4.3, SHA-1) of the event id: the
  entry keeps its id as long as the event keeps its own, whatever the host or path;
* ``published`` — when the event was first saved; ``updated`` — when its saved content last
  changed (an unblock that ends it updates the entry, so a reader sees the end);
* ``link rel="alternate" type="application/json"`` — the event's API URL;
* ``category`` — the kind, ``summary`` — one readable paragraph (networks, brackets,
  method, confidence, evidence, the known event it matches).

Built with ``xml.etree.ElementTree``, which escapes every text and attribute.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from typing import Final

from didban import __version__
from didban.events.record import Event
from didban.events.saved import Saved

ATOM_NS: Final = "http://www.w3.org/2005/Atom"
MEDIA_TYPE: Final = "application/atom+xml"
EPOCH: Final = "1970-01-01T00:00:00Z"
_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_DNS, "events.didban")

ET.register_namespace("", ATOM_NS)


def entry_id(event_id: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, event_id)}"


def feed_id(feed_url: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, feed_url)}"


def _what(e: Event) -> str:
    if e.target:
        return e.target
    if e.asns:
        return ", ".join(f"AS{a}" for a in e.asns)
    return e.cc


def title(e: Event) -> str:
    """``block of instagram in IR (tls.sni.reset)``, ``shutdown in IR``, …"""
    method = f" ({e.method})" if e.method else ""
    if e.kind == "shutdown" or (e.kind in ("outage", "nin") and not e.asns):
        return f"{e.kind} in {e.cc}{method}"
    return f"{e.kind} of {_what(e)} in {e.cc}{method}"


def summary(e: Event) -> str:
    start = f"began after {e.onset_after} and before {e.onset_before}"
    if e.onset_after is None:
        start = f"began before {e.onset_before}"
    end = (
        f"ended after {e.resolved_after} and before {e.resolved_before}"
        if e.resolved_before
        else "ongoing"
    )
    networks = ", ".join(f"AS{a}" for a in e.asns) or "no network named"
    parts = [
        f"{title(e)}: {start}; {end}.",
        f"Networks: {networks}.",
        f"Layer {e.layer or '-'}, method {e.method or '-'}, confidence {e.confidence:.2f},",
        f"{e.n_measurements} measurements from {e.n_probes} probe runs ({e.source}).",
    ]
    if e.known_event:
        parts.append(f"Matches the known event {e.known_event}.")
    return " ".join(parts)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def render(
    rows: Sequence[Saved],
    *,
    feed_title: str,
    feed_url: str,
    alternate_url: str,
    event_url: Callable[[str], str],
    last_run: str | None,
) -> bytes:
    """The Atom document (UTF-8 bytes, XML declaration included) of ``rows``, in order."""
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    _sub(feed, "id", feed_id(feed_url))
    _sub(feed, "title", feed_title)
    _sub(feed, "subtitle", "Blocks, unblocks, shutdowns, outages and NIN isolation found by didban")
    _sub(feed, "updated", max((r.changed for r in rows), default=last_run or EPOCH))
    author = _sub(feed, "author")
    _sub(author, "name", "didban")
    _sub(feed, "link", rel="self", type=MEDIA_TYPE, href=feed_url)
    _sub(feed, "link", rel="alternate", type="application/json", href=alternate_url)
    _sub(feed, "generator", "didban", version=__version__)
    for r in rows:
        e = r.event
        entry = _sub(feed, "entry")
        _sub(entry, "id", entry_id(e.id))
        _sub(entry, "title", title(e))
        _sub(entry, "published", r.first_seen)
        _sub(entry, "updated", r.changed)
        _sub(entry, "link", rel="alternate", type="application/json", href=event_url(e.id))
        _sub(entry, "category", term=e.kind)
        _sub(entry, "summary", summary(e), type="text")
    return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))
