"""The run-level pass (``analysis.nin.Runs``) over a sequence judged in pieces.

``didban analyze`` judges runs over the whole input, in order. A loader that derives blocks
in parallel (worker processes, Spark tasks) judges each block's inner runs where the block
is derived, and leaves open what may continue across its edges: the *head* (the verdicts
before the block's first run boundary) and the *tail* (what a ``Runs`` fed from that
boundary still holds at the block's end). ``Stitch`` joins the pieces again:

* **open start** (``Stitch(open_start=True)``): inside a piece. It holds verdicts back as
  the head until the first boundary — a ``split()`` (a part that has a boundary of its
  own) or a web verdict whose run differs from the head's first one — then feeds a fresh
  ``Runs``; ``edges()`` gives what stays open.
* **closed start**: over the whole sequence (the ingest's parent process, Spark's
  driver), where nothing comes before. For each piece in order: ``add`` its head, ``split``
  if it has a boundary, ``add`` its tail; ``flush`` at the end.

Why this equals one ``Runs`` over everything: after a run boundary a ``Runs`` holds nothing
that came before it, so what a piece judges after its first boundary is what the whole
sequence would, and what it holds at its end is what the whole sequence would hold there.
Only the verdicts yielded by ``add``/``split``/``flush`` are judged; they come in input
order, as ``(key, verdict)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from didban.analysis import nin
from didban.analysis.classify import WEB_TESTS
from didban.model.verdict import Verdict

K = TypeVar("K")
Item = tuple[K, Verdict, bool, float | None]  # key, verdict, no_control, rate


@dataclass
class Edges(Generic[K]):
    """What a piece leaves open: the head, whether a boundary ended it, the tail."""

    head: list[Item[K]] = field(default_factory=list)
    split: bool = False
    tail: list[Item[K]] = field(default_factory=list)


class Stitch(Generic[K]):
    def __init__(self, open_start: bool) -> None:
        self.runs: nin.Runs[K] = nin.Runs()
        self.holding = open_start
        self.head: list[Item[K]] = []
        self.split_seen = False
        self._first: tuple[str, ...] | None = None
        self._fed: dict[K, Item[K]] = {}  # fed to ``runs``, not yet judged

    def add(
        self, key: K, v: Verdict, no_control: bool, rate: float | None
    ) -> Iterator[tuple[K, Verdict]]:
        item: Item[K] = (key, v, no_control, rate)
        if self.holding:
            if v.test_name in WEB_TESTS:
                run = nin.run_key(v)
                if self._first is None:
                    self._first = run
                elif run != self._first:
                    self.holding, self.split_seen = False, True
                    yield from self._feed(item)
                    return
            self.head.append(item)
            return
        yield from self._feed(item)

    def add_all(self, items: Iterable[Item[K]]) -> Iterator[tuple[K, Verdict]]:
        for key, v, no_control, rate in items:
            yield from self.add(key, v, no_control, rate)

    def split(self) -> Iterator[tuple[K, Verdict]]:
        """A run boundary (a piece that has one of its own): what is held is complete."""
        if self.holding:
            self.holding, self.split_seen = False, True
            return
        yield from self._judged(self.runs.flush())

    def flush(self) -> Iterator[tuple[K, Verdict]]:
        """The end of the whole sequence (closed start): judge what is held."""
        yield from self._judged(self.runs.flush())

    def edges(self) -> Edges[K]:
        """What stays open at the end of a piece (open start)."""
        return Edges(list(self.head), self.split_seen, list(self._fed.values()))

    def _feed(self, item: Item[K]) -> Iterator[tuple[K, Verdict]]:
        key, v, no_control, rate = item
        self._fed[key] = item
        yield from self._judged(self.runs.add(key, v, no_control, rate))

    def _judged(self, pairs: Iterable[tuple[K, Verdict]]) -> Iterator[tuple[K, Verdict]]:
        for key, v in pairs:
            self._fed.pop(key, None)
            yield key, v
