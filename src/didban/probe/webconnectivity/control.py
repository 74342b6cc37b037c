"""Step 3, the control (OONI LTE ``control.go``): the test helper repeats the measurement
from an unfiltered vantage point. The request (``x_control_request``) names every address
known when it starts, with :443 and :80 (or the URL's explicit port); the answer is
``control``, a failure ``control_failure``. The queries of a run share the helper
connections of one ``HelperSession``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from didban.control.client import HelperSession
from didban.model import failures
from didban.model.ooni import THRequest, THResponse
from didban.net.httpwire import DEFAULT_HEADERS
from didban.net.stream import format_address
from didban.probe.config import ProbeConfig
from didban.probe.webconnectivity.state import State, Target


async def query(
    target: Target, cfg: ProbeConfig, helper: Callable[[], HelperSession], st: State
) -> None:
    """Ask the helper (``helper()`` gives the run's session) about ``target``."""
    tk = st.tk
    ports = [target.port] if target.explicit_port else [443, 80]
    endpoints = [format_address(ip, p) for ip in st.addrs for p in ports]
    req = THRequest(
        http_request=target.url,
        tcp_connect=endpoints,
        http_request_headers={k: [v] for k, v in DEFAULT_HEADERS},
        x_quic_enabled=False,
    )
    tk.x_control_request = req
    if not cfg.control_url:
        tk.control_failure = failures.unknown("no control helper configured")
        st.control_done = True
        return
    try:
        res = await helper().query(req, cfg.control_timeout)
    except asyncio.CancelledError:
        tk.control_failure = failures.GENERIC_TIMEOUT
        raise
    except Exception as exc:  # the client should not raise; record it if it does
        res = failures.unknown(f"control client: {exc!r}")
    if isinstance(res, THResponse):
        tk.control = res
    else:
        tk.control_failure = res
    st.control_done = True
