"""The censor process: binds the NFQUEUE, installs the active profile, answers every queued
packet, injects forged packets through a raw socket, holds packets for delays, reloads on
SIGHUP and removes everything it installed on SIGTERM.

Readiness contract with the lab: ``censor.ready`` exists exactly while the queue is bound
and the profile's rules are in place (NFQUEUE without a listener drops, pitfall P2).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fnfqueue
import msgspec

from didban.lab import profiles
from didban.lab.censor import kernel, wire
from didban.lab.censor.decision import CensorState, Decision
from didban.lab.censor.enforcers.addresses import TLSMitm
from didban.lab.censor.enforcers.shutdown import Curfew
from didban.lab.censor.log import CensorLog
from didban.lab.censor.mitm import MitmServer
from didban.lab.censor.policy import MARK_BLACKHOLE, MARK_INJECTED, MARK_REJECT, QUEUE_NUM, Policy
from didban.model.labinfo import LabDescriptor

SO_MARK = getattr(socket, "SO_MARK", 36)


class Scheduler:
    """Runs callables at monotonic times on one thread (held packets, curfew edges)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def at(self, when: float, fn: Callable[[], None]) -> None:
        with self._cv:
            heapq.heappush(self._heap, (when, next(self._seq), fn))
            self._cv.notify()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stop and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cv.wait(timeout)
                if self._stop:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:
                traceback.print_exc()


class Engine:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.profile_file = state_dir / "profile.json"
        self.ready_file = state_dir / "censor.ready"
        self.policy_file = state_dir / "resolver-policy.json"
        log_path = state_dir / "censor.log"
        lab_file = state_dir / "lab.json"
        if lab_file.exists():
            desc = msgspec.json.decode(lab_file.read_bytes(), type=LabDescriptor)
            if desc.censor_log:
                log_path = Path(desc.censor_log)
        self.log = CensorLog(log_path)
        self.lock = threading.RLock()
        self.policy: Policy | None = None
        self.state = CensorState()
        self.generation = 0
        self.pruned = time.monotonic()
        self.devices: list[str] = []
        self.sched = Scheduler()
        self.mitm: MitmServer | None = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_MARK, MARK_INJECTED)
        self.conn = fnfqueue.Connection()
        self.queue = self.conn.bind(QUEUE_NUM)
        self.queue.set_mode(fnfqueue.MAX_PAYLOAD, fnfqueue.COPY_PACKET)
        self.queue.set_maxlen(8192)

    # --- profile lifecycle -------------------------------------------------------------
    def load(self) -> None:
        """(Re)load profile.json and install it atomically; on error keep the old rules."""
        profile = profiles.from_json(self.profile_file.read_bytes())
        policy = Policy(profile)
        if policy.mitm and self.mitm is None:  # started once, kept across reloads
            self.mitm = MitmServer(self._mitm_rules, self._mitm_log)
        with self.lock:
            self.devices = kernel.install(policy, self.devices)
            self._write_policy(policy.resolver_policy())
            self.policy = policy
            self.state = CensorState()
            self.generation += 1
            for c in policy.curfews:
                self._schedule_curfew(c, self.generation)
        self.log.write("engine", "engine", f"loaded profile {profile.name}", "-", "-",
                       f"{len(profile.rules)} rules")  # fmt: skip

    def _mitm_rules(self) -> list[TLSMitm]:
        policy = self.policy
        return policy.mitm if policy is not None else []

    def _mitm_log(self, rule_id: str, action: str, src: str, dst: str, detail: str) -> None:
        self.log.write(rule_id, TLSMitm.name, action, src, dst, detail)

    def _write_policy(self, policy: dict[str, Any]) -> None:
        tmp = self.policy_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(policy, indent=1), encoding="utf-8")
        os.replace(tmp, self.policy_file)

    def _schedule_curfew(self, rule: Curfew, generation: int) -> None:
        state = self.state
        on = rule.active(time.monotonic(), state)
        action = f"curfew {'on' if on else 'off'} ({rule.params['mode']})"
        self.log.write(rule.id, rule.name, action, "-", "-", "")

        def edge() -> None:
            with self.lock:
                if self.generation == generation:
                    self._schedule_curfew(rule, generation)

        self.sched.at(rule.next_toggle(time.monotonic(), state) + 0.001, edge)

    # --- packets -----------------------------------------------------------------------
    def serve(self) -> None:
        try:
            for packet in self.conn:
                with self.lock:
                    try:
                        self.handle(packet)
                    except Exception:
                        traceback.print_exc()
                        if not packet._invalid:
                            packet.accept()
        except Exception:
            traceback.print_exc()

    def handle(self, packet: fnfqueue.Packet) -> None:
        pkt = wire.parse(packet.payload)
        if pkt is None or self.policy is None:
            packet.accept()
            return
        now = time.monotonic()
        fired = self.policy.decide(pkt, self.state, now)
        final: Decision | None = None
        for enforcer, d in fired:
            for b in d.inject:
                self.sock.sendto(b, (socket.inet_ntoa(b[16:20]), 0))
            if d.log:
                self.log.write(enforcer.id, enforcer.name, d.action, f"{pkt.src}:{pkt.sport}",
                               f"{pkt.dst}:{pkt.dport}", d.detail)  # fmt: skip
            if d.disposition != "continue":
                final = d
        if final is None or final.disposition == "accept":
            packet.accept()
        elif final.disposition == "drop":
            packet.drop()
        elif final.disposition in ("blackhole", "reject"):
            packet.mark = MARK_BLACKHOLE if final.disposition == "blackhole" else MARK_REJECT
            packet.verdict(fnfqueue.REPEAT, fnfqueue.MANGLE_MARK)
        elif final.disposition == "hold":
            self.sched.at(now + final.hold_s, lambda: self._release(packet))
        if now - self.pruned > 10:
            self.pruned = now
            self.state.prune(now)

    def _release(self, packet: fnfqueue.Packet) -> None:
        with self.lock:
            if self.conn._conn is not None:
                packet.accept()

    # --- process -----------------------------------------------------------------------
    def run(self) -> int:
        try:
            self.load()
        except (OSError, ValueError, KeyError, msgspec.DecodeError, kernel.KernelError) as e:
            print(f"censor: cannot install the profile: {e}", file=sys.stderr)
            self.shutdown()
            return 1
        worker = threading.Thread(target=self.serve, name="nfqueue", daemon=True)
        worker.start()
        self.ready_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
        try:
            while True:
                sig = signal.sigwait({signal.SIGHUP, signal.SIGTERM, signal.SIGINT})
                if sig != signal.SIGHUP:
                    break
                try:
                    self.load()
                except (OSError, ValueError, KeyError, msgspec.DecodeError,
                        kernel.KernelError) as e:  # fmt: skip
                    print(f"censor: reload failed, keeping the previous rules: {e}",
                          file=sys.stderr)  # fmt: skip
                    self.log.write("engine", "engine", "reload failed", "-", "-", str(e))
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        self.ready_file.unlink(missing_ok=True)
        with self.lock:
            problems = kernel.remove(self.devices)
            self.devices = []
            with contextlib.suppress(OSError):
                self._write_policy({"rules": []})
            self.conn.close()
        self.sched.stop()
        if self.mitm is not None:
            self.mitm.close()
        for p in problems:
            if "No chain" not in p and "does not exist" not in p:
                print(f"censor: cleanup: {p}", file=sys.stderr)
        self.log.write("engine", "engine", "stopped", "-", "-", "")
        self.log.close()


def main(state_dir: Path) -> int:
    # Block the control signals before any thread starts: the main thread takes them with
    # sigwait, so handlers never run in the middle of a packet.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGTERM, signal.SIGINT})
    if not (state_dir / "profile.json").is_file():
        print(f"censor: {state_dir / 'profile.json'} does not exist", file=sys.stderr)
        return 2
    try:
        engine = Engine(state_dir)
    except (OSError, msgspec.DecodeError) as e:
        print(f"censor: cannot start: {e}", file=sys.stderr)
        return 1
    return engine.run()
