"""The ground-truth timeline of a lab scenario: what the lab writes, what event scoring reads.

``didban lab scenario FILE`` writes ``ground-truth.jsonl``, one JSON object per line: a
``switch`` record for each profile switch (its planned offset, the moments the switch was
requested and applied, and for every target the outcome the profile's ground truth
expects), then one ``end`` record. ``didban.events.scoring`` compares detected events with
it. Neither imports the other: this file is their contract (as ``labinfo`` is the lab's
with the probe). Times are ISO 8601 UTC with milliseconds; the true moment of a switch lies
in [``requested``, ``applied``]. Pure data, no I/O.
"""

from __future__ import annotations

import msgspec


class Expected(msgspec.Struct, frozen=True, omit_defaults=True):
    """What the profile's ground truth says of one target URL."""

    url: str
    target: str  # the catalog service of the URL's host, else the host (as verdicts name it)
    outcome: str  # ok | blocked | down
    layer: str | None = None
    method: str | None = None


class Switch(msgspec.Struct, tag="switch", frozen=True):
    index: int  # 0 = the profile the scenario starts with
    profile: str
    offset: float  # seconds after the start, as planned
    requested: str
    applied: str
    expected: list[Expected]


class End(msgspec.Struct, tag="end", frozen=True):
    offset: float  # seconds after the start, as it happened
    at: str
    completed: bool  # False: interrupted (Ctrl-C, SIGTERM) or failed
    reason: str


Record = Switch | End

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Record)


def encode(record: Record) -> bytes:
    return _ENCODER.encode(record)


def decode_lines(data: bytes, name: str = "<ground truth>") -> list[Record]:
    """The records of a ground-truth file; ValueError naming ``name:line`` otherwise."""
    out: list[Record] = []
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(_DECODER.decode(line))
        except msgspec.DecodeError as exc:
            raise ValueError(f"{name}:{lineno}: not a ground-truth record ({exc})") from None
    return out
