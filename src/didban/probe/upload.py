"""The probe's durable upload queue: a measurement is on disk before it is sent.

``UploadQueue(dir).put(measurement_bytes)`` writes the measurement to
``<dir>/pending/<sha256>.json`` (temporary name, fsync, rename, fsync of the directory),
so it survives the probe or the machine dying. ``await queue.flush(collector_url)``
sends every pending measurement to the collector's ``POST /api/v1/submit_measurement``
(OONI bk-006), retrying connection errors, timeouts, 429 and 5xx with exponential
backoff; a 200 with a ``measurement_uid`` removes the file and appends
``{"file", "measurement_uid"}`` to ``<dir>/sent.jsonl``. A 4xx other than 408/429 means
the collector will never take it: the file moves to ``<dir>/rejected/`` with the
reason beside it. Whatever is still pending after the retries stays for the next
``flush`` (the next ``didban run --upload``); once one measurement has spent all its
retries on connection errors, the others stop retrying too (the collector is down), so
a flush against a dead collector costs one backoff sequence, not one per measurement.
The collector de-duplicates by content, so a measurement sent twice (acknowledgement
lost, probe killed after sending) is stored once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import httpx2
import orjson

from didban.files.durable import fsync_dir

SUBMIT_PATH = "/api/v1/submit_measurement"


def submit_url(collector_url: str) -> str:
    """``http://host:port`` (or a URL already ending in the path) → the submission URL."""
    url = collector_url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(
            f"the collector URL must start with http:// or https://: {collector_url!r}"
        )
    return url if url.endswith(SUBMIT_PATH) else url + SUBMIT_PATH


class UploadQueue:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self._unreachable = False
        # after a flush: why the last measurement that was not sent was not, in words
        # ("could not connect to the collector", "the collector answered HTTP 503"), and
        # how many the collector refused (moved to rejected/, the reason beside each)
        self.problem: str | None = None
        self.refused = 0
        self.pending_dir = directory / "pending"
        self.rejected_dir = directory / "rejected"
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        self.rejected_dir.mkdir(parents=True, exist_ok=True)

    def put(self, measurement: bytes | dict[str, Any]) -> Path:
        """Queue one measurement (JSON bytes or a dict); returns its file. Idempotent."""
        data = measurement if isinstance(measurement, bytes) else orjson.dumps(measurement)
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not a JSON measurement: {exc}") from None
        if not isinstance(decoded, dict):
            raise ValueError("a measurement must be a JSON object")
        dest = self.pending_dir / f"{hashlib.sha256(data).hexdigest()}.json"
        if dest.exists():
            return dest
        tmp = dest.with_name(dest.name + ".tmp")
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        fsync_dir(self.pending_dir)
        return dest

    def pending(self) -> list[Path]:
        return sorted(self.pending_dir.glob("*.json"))

    def rejected(self) -> list[Path]:
        return sorted(self.rejected_dir.glob("*.json"))

    async def flush(
        self,
        collector_url: str,
        *,
        attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 30.0,
        concurrency: int = 8,
    ) -> tuple[int, int]:
        """Send everything pending; returns (sent, failed). Failed ones stay or are rejected."""
        url = submit_url(collector_url)
        files = self.pending()
        if not files:
            return 0, 0
        sem = asyncio.Semaphore(concurrency)
        sent = failed = 0
        self._unreachable = False
        self.problem = None
        self.refused = 0
        async with httpx2.AsyncClient(timeout=timeout) as client:

            async def one(path: Path) -> bool:
                async with sem:
                    return await self._send(client, url, path, attempts, backoff, max_backoff)

            for ok in await asyncio.gather(*(one(p) for p in files)):
                if ok:
                    sent += 1
                else:
                    failed += 1
        return sent, failed

    async def _send(
        self,
        client: httpx2.AsyncClient,
        url: str,
        path: Path,
        attempts: int,
        backoff: float,
        max_backoff: float,
    ) -> bool:
        try:
            content = path.read_text(encoding="utf-8")
        except FileNotFoundError:  # sent by a concurrent flush
            return True
        body = orjson.dumps({"format": "json", "content": content})
        delay = backoff
        for attempt in range(attempts):
            if self._unreachable:  # another send already spent its retries: do not wait again
                return False
            try:
                r = await client.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
            except httpx2.TimeoutException:
                r, self.problem = None, "the collector did not answer in time"
            except httpx2.HTTPError:
                r, self.problem = None, "could not connect to the collector"
            if r is not None and r.status_code == 200:
                uid = _uid(r)
                if uid:
                    self._sent(path, uid)
                    return True
                self.problem = "the collector's answer had no measurement_uid"
            elif r is not None and 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                self._reject(path, f"{r.status_code} {r.text[:500]}")
                self.refused += 1
                return False
            elif r is not None:
                self.problem = f"the collector answered HTTP {r.status_code}"
            if attempt + 1 < attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_backoff)
            elif r is None:
                self._unreachable = True
        return False

    def _sent(self, path: Path, uid: str) -> None:
        with (self.dir / "sent.jsonl").open("ab") as fh:
            fh.write(orjson.dumps({"file": path.name, "measurement_uid": uid}) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        path.unlink(missing_ok=True)

    def _reject(self, path: Path, reason: str) -> None:
        dest = self.rejected_dir / path.name
        (self.rejected_dir / (path.name + ".reason")).write_text(reason + "\n", encoding="utf-8")
        os.replace(path, dest)


def _uid(r: httpx2.Response) -> str | None:
    try:
        data = r.json()
    except ValueError:
        return None
    uid = data.get("measurement_uid") if isinstance(data, dict) else None
    return uid if isinstance(uid, str) and uid else None
