"""Informed consent before the first measurement on a real network.

Measuring censorship can be a crime where censorship is practised, the results are
published, and anyone watching the network can see the probe's traffic. Before the first
run outside the lab the user reads this and types ``yes`` (or passes ``--accept-risk``);
the acceptance is remembered in ``$XDG_CONFIG_HOME/didban/consent.json`` (default
``~/.config``), so the notice appears once per user.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from didban.probe.envelope import ooni_time, utcnow

NOTICE_VERSION = 1

NOTICE = """\
Before you measure: please read.
  * Measuring censorship can be a crime where censorship is practised: running didban
    may be seen as an act of dissent, and you may face legal or other risks.
  * The measurements are meant to be published: they say which sites were tested from
    which network (country and provider), and when. Your IP address is never written.
  * Anyone who can watch your network (your provider, your employer, the state) can see
    that you tested the listed sites, including sensitive ones.
Type 'yes' to accept these risks and continue (anything else stops): """


class ConsentRefused(Exception):
    """The user did not accept the notice."""


def state_file(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "didban" / "consent.json"


def accepted(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("notice_version") == NOTICE_VERSION


def remember(path: Path, how: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"notice_version": NOTICE_VERSION, "accepted": ooni_time(utcnow()), "how": how})
        + "\n",
        encoding="utf-8",
    )
    os.replace(tmp, path)


def ensure(
    *,
    accept_risk: bool,
    ask: Callable[[str], str],
    path: Path | None = None,
) -> None:
    """Return when consent is given (remembered, flag, or typed 'yes'); else raise."""
    path = path or state_file()
    if accepted(path):
        return
    if accept_risk:
        remember(path, "--accept-risk")
        return
    try:
        answer = ask(NOTICE)
    except EOFError:
        answer = ""
    if answer.strip().lower() != "yes":
        raise ConsentRefused(
            "not measuring: the risk notice was not accepted (type 'yes', or pass --accept-risk)"
        )
    remember(path, "typed yes")
