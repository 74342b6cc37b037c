"""An obfs4 handshake with a bridge, as OONI's tor test makes it for its ``obfs4`` targets,
driven through Debian's ``obfs4proxy`` as a managed pluggable-transport client.

obfs4proxy is started with the pt-spec environment (``TOR_PT_MANAGED_TRANSPORT_VER=1``,
``TOR_PT_CLIENT_TRANSPORTS=obfs4``, a state directory of its own, exit when its stdin
closes) and announces ``CMETHOD obfs4 socks5 127.0.0.1:PORT``. A SOCKS5 CONNECT to the
bridge, with the bridge line's ``cert`` and ``iat-mode`` as the username (pt-spec §3.5),
succeeds only once obfs4proxy has completed the obfs4 handshake with the bridge. Every
failure is SOCKS reply 1, so the failure string comes from obfs4proxy's own log
(``dial tcp ...: connect: connection refused``, ``... connection reset by peer``, an i/o
timeout) or, when the handshake is never answered, from the time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from didban.model import failures
from didban.net import errors, proxy, tcp
from didban.net.trace import Tracer
from didban.probe.circumvention.process import ClientError, ClientProcess

CMETHOD: Final = re.compile(r"^CMETHOD obfs4 socks5 127\.0\.0\.1:(\d+)$")
LOG_FAILURES: Final = (
    ("connection refused", failures.CONNECTION_REFUSED),
    ("connection reset", failures.CONNECTION_RESET),
    ("i/o timeout", failures.GENERIC_TIMEOUT),
    ("no route to host", failures.HOST_UNREACHABLE),
    ("network is unreachable", failures.NETWORK_UNREACHABLE),
    ("EOF", failures.EOF_ERROR),
)


@dataclass
class Result:
    failure: str | None
    log: list[str]


async def handshake(
    address: str, port: int, args: dict[str, str], timeout: float, tracer: Tracer
) -> Result:
    """The obfs4 handshake with the bridge at ``address:port`` with ``args`` (``cert``,
    ``iat-mode``) within ``timeout`` seconds."""
    async with ClientProcess("obfs4proxy", tracer.now) as client:
        state = client.dir / "state"
        state.mkdir(mode=0o700)
        env = {
            "TOR_PT_MANAGED_TRANSPORT_VER": "1",
            "TOR_PT_CLIENT_TRANSPORTS": "obfs4",
            "TOR_PT_STATE_LOCATION": str(state),
            "TOR_PT_EXIT_ON_STDIN_CLOSE": "1",
        }
        argv = ["obfs4proxy", "-enableLogging", "-logLevel", "INFO", "-unsafeLogging"]
        try:
            await client.start(argv, env)
        except (ClientError, OSError) as exc:
            return Result(failures.unknown(str(exc)), [])
        found = await client.wait_for(lambda line: CMETHOD.match(line) is not None, 10.0)
        if found is None:
            return Result(failures.unknown("obfs4proxy announced no obfs4 method"), client.text())
        m = CMETHOD.match(client.lines[found][1])
        assert m is not None
        failure = await _socks(int(m.group(1)), address, port, args, timeout)
        log = _log(state)
        if failure is not None and failure.startswith(failures.UNKNOWN_FAILURE_PREFIX):
            failure = _from_log(log) or failure
        return Result(failure, log)


async def _socks(
    local_port: int, address: str, port: int, args: dict[str, str], timeout: float
) -> str | None:
    connected = await tcp.connect("127.0.0.1", local_port, timeout=5.0)
    if connected.stream is None:
        return failures.unknown(f"obfs4proxy's SOCKS port: {connected.failure}")
    stream = connected.stream
    username, password = proxy.pt_arguments(args)
    try:
        async with asyncio.timeout(timeout):
            await proxy.socks5_connect(stream, address, port, username=username, password=password)
    except proxy.ProxyError as exc:
        return exc.failure
    except TimeoutError:
        return failures.GENERIC_TIMEOUT
    except OSError as exc:
        return errors.classify(exc)
    finally:
        with contextlib.suppress(OSError):
            stream.close()
    return None


def _log(state: Path) -> list[str]:
    path = state / "obfs4proxy.log"
    try:
        return path.read_text(errors="replace").splitlines()[-40:]
    except OSError:
        return []


def _from_log(lines: list[str]) -> str | None:
    for line in reversed(lines):
        if "[ERROR]" not in line and "[WARN]" not in line:
            continue
        for marker, failure in LOG_FAILURES:
            if marker in line:
                return failure
    return None
