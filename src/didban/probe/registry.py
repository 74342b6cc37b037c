"""Every experiment ``didban run`` can run, by name and by group (``--test NAME``).

A :class:`Spec` names an experiment, its group, a one-line summary for ``--help``, how to
make it (its module is imported only then: ``--help`` needs none of them) and which inputs
it measures: web_connectivity and the HTTP/3 test take the test list's URLs; the IM tests
take none (one measurement per run, input null); stunreachability takes the catalog's STUN
servers. Groups: ``websites`` (the default: web_connectivity), ``im``, ``circumvention``
(empty until the circumvention experiments exist) and ``all``; the HTTP/3 test belongs to
none (a website run stays one measurement per URL) and is chosen by name or ``all``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from didban.probe.config import ProbeConfig
from didban.probe.envelope import ProbeIdentity
from didban.probe.lists import ListEntry

GROUPS: Final = ("websites", "im", "circumvention")
# An experiment of no group ("") is chosen by its name, or by ``all``.
DEFAULT: Final = "websites"


class UnknownTest(ValueError):
    """A ``--test`` value that names no experiment and no group."""


@dataclass(frozen=True)
class Spec:
    name: str
    group: str
    summary: str
    make: Callable[[ProbeConfig, ProbeIdentity], Any]
    inputs: Callable[[Sequence[ListEntry], bool], list[ListEntry]]


def _web(cfg: ProbeConfig, ident: ProbeIdentity) -> Any:
    from didban.probe.webconnectivity import WebConnectivity

    return WebConnectivity(cfg, ident)


def _http3(cfg: ProbeConfig, ident: ProbeIdentity) -> Any:
    from didban.probe.http3 import HTTP3

    return HTTP3(cfg, ident)


def _http3_inputs(entries: Sequence[ListEntry], explicit: bool) -> list[ListEntry]:
    from didban.probe.http3 import wanted

    return [e for e in entries if wanted(e, explicit)]


def _telegram(cfg: ProbeConfig, ident: ProbeIdentity) -> Any:
    from didban.probe.apps.telegram import Telegram

    return Telegram(cfg, ident)


def _signal(cfg: ProbeConfig, ident: ProbeIdentity) -> Any:
    from didban.probe.apps.signal import Signal

    return Signal(cfg, ident)


def _whatsapp(cfg: ProbeConfig, ident: ProbeIdentity) -> Any:
    from didban.probe.apps.whatsapp import WhatsApp

    return WhatsApp(cfg, ident)


def _facebook_messenger(cfg: ProbeConfig, ident: ProbeIdentity) -> Any:
    from didban.probe.apps.facebook_messenger import FacebookMessenger

    return FacebookMessenger(cfg, ident)


def _stunreachability(cfg: ProbeConfig, ident: ProbeIdentity) -> Any:
    from didban.probe.apps.stunreachability import StunReachability

    return StunReachability(cfg, ident)


def _no_input(name: str) -> Callable[[Sequence[ListEntry], bool], list[ListEntry]]:
    # one measurement per run; the entry's url names the test for messages and summaries
    return lambda _entries, _explicit: [ListEntry(url=name)]


def _stun_inputs(_entries: Sequence[ListEntry], _explicit: bool) -> list[ListEntry]:
    from didban.probe.apps.stunreachability import default_inputs

    return [ListEntry(url=u) for u in default_inputs()]


SPECS: Final[tuple[Spec, ...]] = (
    Spec("web_connectivity", "websites",
         "DNS, TCP, TLS and HTTP of every URL of the test list, against the control",
         _web, lambda entries, _explicit: list(entries)),
    Spec("quic", "",
         "HTTP/3 over QUIC to each https target whose service offers it (every https "
         "--url), beside TCP+TLS and the control: OONI urlgetter, HTTP3Enabled",
         _http3, _http3_inputs),
    Spec("telegram", "im", "Telegram's data centres (HTTP on 80 and 443) and Telegram Web",
         _telegram, _no_input("telegram")),
    Spec("signal", "im", "Signal's backends over HTTPS, verified against Signal's own CA",
         _signal, _no_input("signal")),
    Spec("whatsapp", "im", "WhatsApp's endpoints (TCP 443, 5222), registration server and web",
         _whatsapp, _no_input("whatsapp")),
    Spec("facebook_messenger", "im",
         "Messenger's endpoints: DNS answers inside Facebook's AS, TCP on 443",
         _facebook_messenger, _no_input("facebook_messenger")),
    Spec("stunreachability", "im", "a STUN binding request to each STUN server of the catalog",
         _stunreachability, _stun_inputs),
)  # fmt: skip


def by_name(name: str) -> Spec:
    for s in SPECS:
        if s.name == name:
            return s
    raise UnknownTest(name)


def members(group: str) -> list[Spec]:
    return [s for s in SPECS if s.group == group]


def select(names: Sequence[str]) -> list[Spec]:
    """The experiments ``--test`` names (experiments or groups, repeatable), in registry
    order, each once; the default group when none is named. A group without experiments
    (``circumvention``, today) selects nothing and is not an error."""
    if not names:
        names = [DEFAULT]
    chosen: set[str] = set()
    for name in names:
        if name == "all":
            chosen.update(s.name for s in SPECS)
        elif name in GROUPS:
            chosen.update(s.name for s in members(name))
        elif any(s.name == name for s in SPECS):
            chosen.add(name)
        else:
            known = ", ".join([*GROUPS, "all", *(s.name for s in SPECS)])
            raise UnknownTest(f"--test {name!r} is no experiment or group (known: {known})")
    return [s for s in SPECS if s.name in chosen]


def help_text() -> str:
    """The ``--test`` help: groups, then every experiment with its group."""
    lines = [
        "Experiment or group to run (repeatable). Groups: websites (the default), "
        "im, circumvention (no experiment yet: Tor, VPNs and proxies come later), all."
    ]
    lines += [f"{s.name} ({s.group or 'by name or all'}): {s.summary}." for s in SPECS]
    return " ".join(lines)
