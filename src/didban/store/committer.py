"""Group commit for a busy collector: one thread owns the store's writes.

Request handlers call ``submit(measurement)`` and await the returned future. The
committer thread takes everything queued (up to ``max_batch``), writes it with one
``Store.add_batch`` (one archive fsync per file, one index commit), then resolves
each future with the measurement's uid — so an acknowledgement always follows the
fsync — and only then classifies them and derives their table rows. Between batches
it flushes table rows (every ``flush_every`` seconds or ``flush_rows`` measurements)
and merges small Parquet files (every ``compact_every`` seconds, only the incremental
files).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from didban.store.store import Added, Store

log = logging.getLogger(__name__)

_STOP = object()


class Committer:
    def __init__(
        self,
        store: Store,
        max_batch: int = 1000,
        flush_every: float = 2.0,
        flush_rows: int = 5000,
        compact_every: float = 60.0,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.flush_every = flush_every
        self.flush_rows = flush_rows
        self.compact_every = compact_every
        self._q: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="didban-committer", daemon=True)
        self._last_compact = time.monotonic()
        self._thread.start()

    def submit(self, measurement: dict[str, Any]) -> Future[Added]:
        fut: Future[Added] = Future()
        self._q.put((measurement, fut))
        return fut

    def close(self) -> None:
        self._q.put(_STOP)
        self._thread.join()
        self.store.flush()

    def _run(self) -> None:
        while True:
            try:
                first = self._q.get(timeout=0.5)
            except queue.Empty:
                self._housekeeping()
                continue
            items = [first]
            while len(items) < self.max_batch:
                try:
                    items.append(self._q.get_nowait())
                except queue.Empty:
                    break
            stop = any(it is _STOP for it in items)
            work = [it for it in items if it is not _STOP]
            if work:
                self._commit(work)
            self._housekeeping()
            if stop:
                return

    def _commit(self, work: list[tuple[dict[str, Any], Future[Added]]]) -> None:
        try:
            added = self.store.add_batch(
                [m for m, _ in work], received=datetime.now(UTC), defer=True
            )
        except Exception as exc:
            if len(work) > 1:  # one bad measurement must not fail the others: one by one
                for item in work:
                    self._commit([item])
                return
            log.exception("storing a measurement failed")
            work[0][1].set_exception(exc)
            return
        for (_, fut), a in zip(work, added, strict=True):
            fut.set_result(a)
        try:
            self.store.derive_pending()  # analysis and table rows, after the acknowledgements
        except Exception:
            log.exception("deriving table rows failed (the archive is unaffected)")

    def _housekeeping(self) -> None:
        try:
            w = self.store.writer
            if w.pending_rows and (
                w.pending_rows >= self.flush_rows
                or time.monotonic() - w.last_flush >= self.flush_every
            ):
                self.store.flush()
            if time.monotonic() - self._last_compact >= self.compact_every:
                self._last_compact = time.monotonic()
                self.store.writer.compact(incremental_only=True)
        except Exception:
            log.exception("table maintenance failed (the archive is unaffected)")
