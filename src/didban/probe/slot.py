"""The runner's concurrency slot, as an experiment sees it.

The runner bounds how many inputs are measured at once. An experiment whose active work
is over, and which only waits passively (web_connectivity listening 500 ms for late or
duplicate UDP DNS replies, ooni-methodology.md §3.4), gives its slot back with
``release()`` so the next input can start: the bound is on work done on the network, not
on sockets left listening. Outside a runner (a single measurement, a test) ``release()``
does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

_CURRENT: ContextVar[Callable[[], None] | None] = ContextVar("didban_slot", default=None)


def bind(release_fn: Callable[[], None]) -> None:
    """Make ``release_fn`` the current task's slot release (the runner calls this)."""
    _CURRENT.set(release_fn)


def release() -> None:
    """Give the current input's concurrency slot back; harmless if already released."""
    fn = _CURRENT.get()
    if fn is not None:
        fn()
