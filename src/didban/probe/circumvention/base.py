"""What every circumvention experiment shares (:class:`TunnelExperiment`): OONI's own
bound on one bootstrap or handshake (or the run's shorter one, e.g. the lab's), kept inside
the run's per-input deadline; events written by the test itself (not the df-008 log); the
TCP baseline to a server (``x_didban_baseline``)."""

from __future__ import annotations

from typing import ClassVar, Final

from didban.model.ooni import TCPConnect
from didban.net import tcp
from didban.probe.apps.flows import Context
from didban.probe.experiment import Experiment

GRACE: Final = 5.0


class TunnelExperiment(Experiment):
    """What the circumvention experiments share: their own bound, their own events."""

    extensions: ClassVar[dict[str, int]] = {"tunnel": 0}
    records_events = False
    ooni_timeout: ClassVar[float] = 60.0

    def timeout(self, deadline: float) -> float:
        """The bootstrap/handshake bound: OONI's, or the run's shorter one, within the
        per-input deadline."""
        own = self.config.tunnel_timeout or self.ooni_timeout
        return max(1.0, min(own, deadline - GRACE))

    def bound(self, deadline: float) -> float:
        return deadline

    async def tcp_baseline(self, ctx: Context, host: str, port: int) -> TCPConnect:
        """didban's ``x_didban_baseline``: a TCP connect to the server's address and port,
        closed at once — does the host answer at all, apart from the tool's handshake?"""
        baseline = await tcp.connect(
            host, port, tracer=ctx.log.flow(["x_didban_baseline"]), timeout=self.config.tcp_timeout
        )
        if baseline.stream is not None:
            baseline.stream.close()
        return baseline.record
