"""The censor's event log (``censor.log``): one JSON line per rule that fired, appended with a
single ``write`` on an ``O_APPEND`` descriptor so lines from any thread never interleave.

Schema: ``{"ts", "rule", "technique", "action", "src", "dst", "detail"}``. Repeats of the
same (rule, flow, action) within ``dedupe_s`` are written once (a blackholed flow's
retransmissions would otherwise flood the file).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import orjson


class CensorLog:
    def __init__(self, path: Path, dedupe_s: float = 1.0) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.dedupe_s = dedupe_s
        self._last: dict[tuple[str, str, str, str], float] = {}
        self._lock = threading.Lock()

    def write(
        self, rule: str, technique: str, action: str, src: str, dst: str, detail: str = ""
    ) -> bool:
        """Append one line unless it repeats a line written less than ``dedupe_s`` ago."""
        now = time.monotonic()
        key = (rule, action, src, dst)
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.dedupe_s:
                return False
            self._last[key] = now
            if len(self._last) > 50000:
                self._last.clear()
        line = orjson.dumps(
            {
                "ts": time.time(),
                "rule": rule,
                "technique": technique,
                "action": action,
                "src": src,
                "dst": dst,
                "detail": detail,
            }
        )
        with self._lock:
            if self.fd < 0:
                return False
            os.write(self.fd, line + b"\n")
        return True

    def close(self) -> None:
        """Close the file; later writes (a listener thread finishing) are dropped."""
        with self._lock:
            fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)
