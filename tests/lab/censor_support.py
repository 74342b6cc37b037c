"""Helpers shared by the censor's lab tests: reading the censor log and switching profiles
(waiting until the censor has reloaded)."""

from __future__ import annotations

import time
from typing import Any


def fired(lab: Any, rule: str, since: float = 0.0) -> list[dict[str, Any]]:
    """Censor-log lines of ``rule`` written after ``since`` (unix time)."""
    return [e for e in lab.censor_log() if e["rule"] == rule and e["ts"] >= since]


def switch(lab: Any, profile: str) -> None:
    """Switch profiles and wait until the censor says it loaded the new one."""
    before = len([e for e in lab.censor_log() if e["action"].startswith("loaded profile")])
    name = lab.switch(profile)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        loaded = [e for e in lab.censor_log() if e["action"].startswith("loaded profile")]
        if len(loaded) > before and loaded[-1]["action"] == f"loaded profile {name}":
            return
        time.sleep(0.05)
    raise AssertionError(f"the censor did not reload profile {name}")
