"""Alerts: signed JSON POSTs through the durable outbox, against a real loopback receiver that
is down, then slow, then back; and across a restart of the process that queued them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from events_helpers import hourly, write_store

from didban.events import webhook
from didban.events.alerts import AlertError, Outbox
from didban.events.record import Event


class Receiver:
    """A webhook receiver on 127.0.0.1: ``mode`` is "ok" (200) or "slow" (answers late)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mode = "ok"
        self.delay = 1.5
        self.seen: list[tuple[dict[str, str], bytes]] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.seen.append((dict(self.headers.items()), body))
                if outer.mode == "slow":
                    time.sleep(outer.delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(_free_port())
    yield r
    r.stop()


def _event(eid: str, resolved: bool, confidence: float = 0.9, cc: str = "IR") -> Event:
    return Event(
        id=eid,
        kind="block",
        cc=cc,
        asns=[44244],
        target="instagram",
        layer="tls",
        method="tls.sni.reset",
        onset_after="2026-03-06T00:00:00Z",
        onset_before="2026-03-06T01:00:00Z",
        resolved_after="2026-03-07T00:00:00Z" if resolved else None,
        resolved_before="2026-03-07T01:00:00Z" if resolved else None,
        confidence=confidence,
        n_measurements=10,
        n_probes=2,
        witnesses=["u1"],
        source="didban",
    )


def test_down_then_slow_then_back_delivers_every_start_and_end_signed(
    tmp_path: Path, receiver: Receiver
) -> None:
    box = Outbox(tmp_path, base_delay=0.05, max_delay=0.2, timeout=0.5)
    sub = box.add(f"http://127.0.0.1:{receiver.port}/hook", cc="IR")
    other = box.add(f"http://127.0.0.1:{receiver.port}/other", cc="AF")
    events = [
        _event("ev-a", resolved=True),
        _event("ev-b", resolved=False),
        _event("ev-weak", resolved=False, confidence=0.3),
    ]
    assert box.enqueue(events) == 3  # a's start and end, b's start; nothing for AF or weak
    assert box.enqueue(events) == 0  # the detector ran again: nothing new

    assert box.deliver() == (0, 3)  # receiver down: connection refused
    pending = box.pending()
    assert {p.attempts for p in pending} == {1} and all(p.last_error for p in pending)
    assert all(p.next_at > time.time() for p in pending)  # backed off, not retried at once

    receiver.mode = "slow"
    receiver.start()
    time.sleep(0.25)
    delivered, failed = box.deliver()
    assert (delivered, failed) == (0, 3)  # it got them, but answered after our timeout
    assert {p.last_error for p in box.pending()} == {"timed out"}
    box.close()  # the process that queued them stops here

    receiver.mode = "ok"
    again = Outbox(tmp_path, base_delay=0.05, max_delay=0.2, timeout=0.5)
    assert again.drain(time.time() + 20) == 0
    assert again.pending() == []
    again.close()

    keys = set()
    for headers, body in receiver.seen:
        assert webhook.verify(sub.secret, headers["Didban-Signature"], body)
        assert not webhook.verify(other.secret, headers["Didban-Signature"], body)
        doc = json.loads(body)
        assert doc["idempotency_key"] == headers["Didban-Idempotency-Key"]
        assert doc["type"] in ("event.start", "event.end")
        keys.add(doc["idempotency_key"])
    assert keys == {"ev-a:start", "ev-a:end", "ev-b:start"}
    assert len(receiver.seen) >= 6  # the slow round arrived too: at least once, not exactly once


def test_signature_rejects_tampering_other_secrets_and_stale_times() -> None:
    body = b'{"x":1}'
    now = int(time.time())
    header = webhook.sign("s3cret", body, now)
    assert header.startswith(f"t={now},v1=")
    assert webhook.verify("s3cret", header, body)
    assert not webhook.verify("s3cret", header, body + b" ")
    assert not webhook.verify("other", header, body)
    assert not webhook.verify("s3cret", header, body, now=now + 3600)
    assert not webhook.verify("s3cret", "garbage", body)


def test_backoff_doubles_up_to_its_cap(tmp_path: Path) -> None:
    with Outbox(tmp_path, base_delay=30, max_delay=3600) as box:
        assert [box.delay(a) for a in (1, 2, 3, 8, 20)] == [30, 60, 120, 3600, 3600]


def test_bad_subscriptions_are_one_sentence(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        with pytest.raises(AlertError, match="is not an http:// or https:// URL"):
            box.add("ftp://example.org/")
        with pytest.raises(AlertError, match="--kind must be one of"):
            box.add("http://127.0.0.1/", kind="weather")
        with pytest.raises(AlertError, match="no subscription"):
            box.remove("sub-nope")
        sub = box.add("http://127.0.0.1:9/x")
        box.remove(sub.id)
        assert box.subscriptions() == []
    assert oct(os.stat(tmp_path / "alerts.sqlite").st_mode & 0o777) == "0o600"


def _didban(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("didban")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


def test_alerts_survive_a_restart_between_detection_and_delivery(
    tmp_path: Path, receiver: Receiver
) -> None:
    store = tmp_path / "store"
    write_store(store, hourly(24 * 6, 6, blocked_from=24 * 5))
    url = f"http://127.0.0.1:{receiver.port}/hook"
    added = _didban("alerts", "add", url, "--cc", "IR", "--data-dir", str(store))
    assert added.returncode == 0, added.stderr
    secret = added.stdout.split("secret ", 1)[1].strip()
    detected = _didban("events", "detect", "--notify", "--data-dir", str(store))
    assert detected.returncode == 0, detected.stderr
    assert "1 queued, 0 delivered, 1 failed, 1 pending" in detected.stderr  # receiver down
    listed = _didban("alerts", "list", "--data-dir", str(store))
    assert url in listed.stdout and "Connection refused" in listed.stdout
    receiver.start()
    sent = _didban("alerts", "deliver", "--now", "--data-dir", str(store))
    assert sent.returncode == 0, sent.stderr
    assert "1 delivered, 0 failed, 0 pending" in sent.stderr
    ((headers, body),) = receiver.seen
    assert webhook.verify(secret, headers["Didban-Signature"], body)
    assert json.loads(body)["event"]["target"] == "instagram"


def test_reading_subscriptions_in_a_mistyped_directory_creates_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from didban.cli import app

    typo = tmp_path / "sotre"
    for args in (["list"], ["remove", "sub-1"], ["deliver"]):
        r = CliRunner().invoke(app, ["alerts", *args, "--data-dir", str(typo)])
        assert r.exit_code == 2, r.output
        assert r.stderr == f"error: there is no data directory {typo} (see --data-dir)\n"
    assert not typo.exists()
