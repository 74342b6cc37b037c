"""``openvpn`` (OONI ts-040, probe-cli 0.1.1): one OpenVPN handshake per endpoint, with
Debian's ``openvpn`` as the client, recorded as OONI's experiment (minivpn) records it.

The client runs with ``dev null`` (no tunnel device: the handshake is what is measured),
``verb 6`` (one log line per control-channel packet: direction, size, opcode, key id,
acks, packet id, payload length) and a handshake window equal to the test's timeout; it is
stopped by its pid at ``Initialization Sequence Completed`` or when the window ends. From
its log come OONI's keys:

* ``network_events``: a ``packet_out``/``packet_in`` event per packet (``packet``:
  operation, opcode, id, acks, payload size, send attempts — the number of times that
  packet id was written), ``state`` events for minivpn's stages as the log shows them —
  PRE_START (the client's hard reset), START (the server's), SENT_KEY (``Control
  Channel: ...``, the TLS handshake done), GOT_KEY (``Peer Connection Initiated``),
  ACTIVE (``Data Channel: Cipher ... initialized``), GENERATED_KEYS (``Initialization
  Sequence Completed``); the first control packet written is tagged ``client_hello``, the
  first read ``server_hello`` (verb 6 does not show payloads: minivpn reads the TLS type);
* ``tcp_connect`` (TCP endpoints: ``TCP connection established`` or the connect's failure);
* ``openvpn_handshake``: endpoint, address, transport, provider, options, status, times;
* ``failure``: ``generic_timeout_error`` when the handshake window passed (``TLS key
  negotiation failed``), ``connection_refused``/``connection_reset`` from the log.

For a UDP endpoint, didban adds a TCP connect to the same address and port
(``x_didban_baseline``): a refused or accepted connect shows the host answers, so an
unanswered handshake is about the protocol, not the address.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import ClassVar, Final

from didban.model import failures
from didban.model.ooni import TCPConnect, TCPConnectStatus
from didban.model.oonicircumvention import (
    OpenVPNEvent,
    OpenVPNHandshake,
    OpenVPNKeys,
    OpenVPNPacket,
    OpenVPNStatus,
)
from didban.probe.apps.flows import Context
from didban.probe.circumvention.base import TunnelExperiment
from didban.probe.circumvention.endpoints import VPNEndpoint, parse_vpn_input
from didban.probe.circumvention.process import ClientError, ClientProcess, check_addresses
from didban.probe.lists import ListEntry

STAMP: Final = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) us=(\d+) ")
PACKET: Final = re.compile(
    r"\b(?:UDP|TCP)v[46]\S* (READ|WRITE) \[\d+\] (?:to|from) \S+: (P_\w+) kid=\d+ "
    r"\[ ([\d ]*)\] (?:pid=(\d+) )?DATA len=(\d+)"
)
STAGES: Final = (
    ("Control Channel:", "SENT_KEY"),
    ("Peer Connection Initiated", "GOT_KEY"),
    ("Data Channel: Cipher", "ACTIVE"),
    ("Initialization Sequence Completed", "GENERATED_KEYS"),
)
FAILURES: Final = (
    ("TLS key negotiation failed", failures.GENERIC_TIMEOUT),
    ("Connection refused", failures.CONNECTION_REFUSED),
    ("Connection reset", failures.CONNECTION_RESET),
    ("Connection timed out", failures.GENERIC_TIMEOUT),
    ("No route to host", failures.HOST_UNREACHABLE),
    ("Network is unreachable", failures.NETWORK_UNREACHABLE),
    ("VERIFY ERROR", failures.SSL_INVALID_CERTIFICATE),
    ("TLS handshake failed", failures.SSL_FAILED_HANDSHAKE),
)
DONE: Final = "Initialization Sequence Completed"
TCP_UP: Final = "TCP connection established"
TCP_FAIL: Final = re.compile(r"TCP: connect to \S+ failed: (.*)$")


class OpenVPN(TunnelExperiment):
    test_name = "openvpn"
    test_version = "0.1.1-didban.1"
    takes_input = True
    ooni_timeout = 60.0
    extensions: ClassVar[dict[str, int]] = {"netevents": 0, "tcpconnect": 0, "tunnel": 0}

    def new_keys(self) -> OpenVPNKeys:
        return OpenVPNKeys()

    async def run(self, ctx: Context, entry: ListEntry) -> None:
        keys = ctx.test_keys
        assert isinstance(keys, OpenVPNKeys)
        try:
            ep = parse_vpn_input(entry.url)
            check_addresses([ep.ip])
        except (ValueError, ClientError) as exc:
            keys.failure = failures.unknown(str(exc))
            return
        lab = self.config.circumvention
        if lab is None:
            keys.failure = failures.unknown("no credentials for this OpenVPN endpoint")
            return
        creds = lab.openvpn
        if ep.transport == "udp":
            keys.x_didban_baseline.append(await self.tcp_baseline(ctx, ep.ip, ep.port))
        timeout = self.timeout(self.deadline)
        async with ClientProcess("openvpn", ctx.log.now) as client:
            conf = client.dir / "client.conf"
            conf.write_text(
                "\n".join(
                    _config(
                        ep,
                        creds.ca_file,
                        creds.cert_file,
                        creds.key_file,
                        creds.cipher,
                        creds.auth,
                        timeout,
                        self.config.tcp_timeout,
                    )
                )
                + "\n"
            )
            t_start, wall = ctx.log.now(), time.time()
            try:
                await client.start(["openvpn", "--config", str(conf)])
            except (ClientError, OSError) as exc:
                keys.failure = failures.unknown(str(exc))
                return
            ended = lambda line: DONE in line or any(m in line for m, _ in FAILURES)  # noqa: E731
            await client.wait_for(ended, timeout)
            read_log(
                keys, ep, client.lines, t_start, wall, {"auth": creds.auth, "cipher": creds.cipher}
            )

    def unfinished(self, ctx: Context) -> None:
        keys = ctx.test_keys
        if not keys.success and keys.failure is None:
            keys.failure = failures.GENERIC_TIMEOUT


def _config(
    ep: VPNEndpoint,
    ca: str,
    cert: str,
    key: str,
    cipher: str,
    auth: str,
    timeout: float,
    connect_timeout: float = 10.0,
) -> list[str]:
    window = max(1, int(timeout))
    return [
        "client", "dev null", f"proto {'udp4' if ep.transport == 'udp' else 'tcp4-client'}",
        f"remote {ep.ip} {ep.port}", "nobind", f"ca {ca}", f"cert {cert}", f"key {key}",
        "remote-cert-tls server", "ifconfig-noexec", "route-noexec", "connect-retry-max 1",
        f"connect-timeout {max(1, int(min(connect_timeout, window)))}",
        f"hand-window {window}", f"server-poll-timeout {window}",
        f"data-ciphers {cipher}", f"auth {auth}", "verb 6",
    ]  # fmt: skip


def _t(line: str, t_start: float, wall: float, read_at: float) -> float:
    """The line's own time (OpenVPN's microsecond stamp) on the measurement's clock."""
    m = STAMP.match(line)
    if m is None:
        return round(read_at, 6)
    stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(m.group(2)) / 1e6
    return round(max(0.0, t_start + stamp - wall), 6)


def read_log(
    keys: OpenVPNKeys,
    ep: VPNEndpoint,
    lines: list[tuple[float, str]],
    t_start: float,
    wall: float,
    options: dict[str, str],
) -> None:
    """OONI's openvpn keys from the client's verb-6 log."""
    stage = "INITIAL"
    events: list[OpenVPNEvent] = []
    attempts: dict[tuple[str, int], int] = {}
    tagged: set[str] = set()
    failure: str | None = None
    t0: float | None = None
    t_done: float | None = None
    tcp_t0 = t_start
    tcp_tried = False

    def state(new: str, t: float) -> None:
        nonlocal stage
        stage = new
        events.append(OpenVPNEvent(operation="state", stage=new, t=t))

    for read_at, line in lines:
        t = _t(line, t_start, wall, read_at)
        if "Attempting to establish TCP connection" in line:
            tcp_t0, tcp_tried = t, True
        if TCP_UP in line:
            keys.tcp_connect.append(_tcp(ep, tcp_t0, t, None))
        elif (m := TCP_FAIL.search(line)) is not None:
            failure = _failure(m.group(1)) or failures.unknown(m.group(1))
            keys.tcp_connect.append(_tcp(ep, tcp_t0, t, failure))
        if (p := PACKET.search(line)) is not None:
            direction, opcode, acks, pid, size = p.groups()
            write = direction == "WRITE"
            if write and opcode == "P_CONTROL_HARD_RESET_CLIENT_V2" and stage == "INITIAL":
                t0 = t
                state("PRE_START", t)
            if not write and opcode == "P_CONTROL_HARD_RESET_SERVER_V2" and stage == "PRE_START":
                state("START", t)
            packet_id = int(pid) if pid else 0
            tags: list[str] = []
            if opcode == "P_CONTROL_V1":
                tag = "client_hello" if write else "server_hello"
                if tag not in tagged:
                    tagged.add(tag)
                    tags.append(tag)
            sent = None
            if write:
                sent = attempts[(opcode, packet_id)] = attempts.get((opcode, packet_id), 0) + 1
            packet = OpenVPNPacket(
                operation="write" if write else "read", opcode=opcode, id=packet_id,
                acks=[int(a) for a in acks.split()], payload_size=int(size),
                send_attempts=sent, stage=stage,
            )  # fmt: skip
            events.append(
                OpenVPNEvent(
                    operation="packet_out" if write else "packet_in",
                    stage=stage,
                    t=t,
                    tags=tags,
                    packet=packet,
                )
            )
            continue
        for marker, new in STAGES:
            if marker in line and stage != new:
                state(new, t)
                if new == "GENERATED_KEYS":
                    t_done = t
        if failure is None:
            failure = _failure(line)
    if ep.transport == "tcp" and not keys.tcp_connect and tcp_tried:
        # the connect never completed before the client was stopped
        keys.tcp_connect.append(_tcp(ep, tcp_t0, t_start, failures.GENERIC_TIMEOUT))
        failure = failure or failures.GENERIC_TIMEOUT
    keys.network_events = events
    success = t_done is not None
    if not success and failure is None:
        failure = failures.GENERIC_TIMEOUT
    start = t0 if t0 is not None else t_start
    end = t_done if t_done is not None else (events[-1].t if events else start)
    elapsed = round(end - start, 6) if success else 0.0
    keys.success = success
    keys.failure = None if success else failure
    keys.bootstrap_time = elapsed
    keys.openvpn_handshake = [
        OpenVPNHandshake(
            bootstrap_time=elapsed, handshake_time=round(end - start, 6), endpoint=ep.endpoint,
            failure=keys.failure, ip=ep.ip, port=ep.port, transport=ep.transport,
            provider=ep.provider, openvpn_options=options,
            status=OpenVPNStatus(success=success, failure=keys.failure),
            t0=round(start, 6), t=round(end, 6),
        )
    ]  # fmt: skip


def _failure(line: str) -> str | None:
    for marker, failure in FAILURES:
        if marker in line:
            return failure
    return None


def _tcp(ep: VPNEndpoint, t0: float, t: float, failure: str | None) -> TCPConnect:
    return TCPConnect(
        ip=ep.ip,
        port=ep.port,
        status=TCPConnectStatus(success=failure is None, failure=failure),
        t0=t0,
        t=t,
        transaction_id=1,
    )
