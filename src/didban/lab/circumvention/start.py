"""``didban lab circumvention``: start every circumvention server in a running lab, once.

Everything runs in the ``inet`` namespace, each process in the foreground with its pid
recorded in the lab's record (``lab down`` stops it like every lab process), its keys,
configs and state under ``<state_dir>/circ/``:

* the private Tor network (:mod:`tornet`): authority, relay, exit, obfs4 bridge;
* Snowflake: Debian's ``snowflake-proxy``, and the broker and server stand-ins
  (:mod:`services`); its ICE server is the lab's STUN server ``stun.voipgate.com``;
* OpenVPN over UDP and over TCP on port 1194 (Debian's ``openvpn``; a CA of its own,
  made with trustme, signs the server's and the probe's certificates);
* a WireGuard peer (Debian's ``wireguard-go`` in the foreground, configured with ``wg``);
* Shadowsocks (``ss-server``), an HTTP CONNECT proxy (``tinyproxy``), a SOCKS5 proxy
  (``microsocks``).

The fast servers are ready within a second; the call then waits for the Tor network's
first usable consensus (14-28 s after a cold start, tor's 10 s voting schedule), writes
``circ/tor.ready`` and the descriptor's ``circumvention`` section, and returns it. A second
call on a lab whose servers run returns at once.
"""

from __future__ import annotations

import base64
import functools
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import trustme
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from didban.lab import plan, runtime, state, stunserver
from didban.lab.circumvention import layout, services, tornet
from didban.lab.state import LabRecord
from didban.model.labinfo import (
    LabCircumvention,
    LabOpenVPN,
    LabShadowsocks,
    LabSnowflake,
    LabWireGuard,
)

READY_TIMEOUT: Final = 30.0
TOR_TIMEOUT: Final = 90.0
# Debian packages whose programs the servers run (the probe's clients come from the same).
PROGRAMS: Final = {
    "tor": "tor",
    "tor-gencert": "tor",
    "obfs4proxy": "obfs4proxy",
    "snowflake-proxy": "snowflake-proxy",
    "openvpn": "openvpn",
    "wireguard-go": "wireguard-go",
    "wg": "wireguard-tools",
    "ss-server": "shadowsocks-libev",
    "tinyproxy": "tinyproxy",
    "microsocks": "microsocks",
}
NAMES: Final = (
    "tor-",
    "snowflake-",
    "openvpn-",
    "wireguard",
    "shadowsocks",
    "http-proxy",
    "socks5-proxy",
    "circumvention-services",
)


def missing_programs() -> list[str]:
    return [f"{p} (Debian: {pkg})" for p, pkg in PROGRAMS.items() if shutil.which(p) is None]


def running(record: LabRecord) -> bool:
    """True when the lab's circumvention servers were started and every one is alive."""
    procs = [p for p in record.procs if p.name.startswith(NAMES)]
    return record.circumvention is not None and bool(procs) and all(map(state.alive, procs))


def up(state_dir: Path, *, tor_timeout: float = TOR_TIMEOUT) -> LabCircumvention:
    """Start the servers in the lab of ``state_dir`` (if not running); return what the
    probe needs to reach them. Raises ``runtime.LabError`` with one sentence."""
    record = state.load(state_dir)
    if record is None or not runtime.lab_exists(state_dir):
        raise runtime.LabError(f"no lab at {state_dir}")
    if running(record):
        assert record.circumvention is not None
        return record.circumvention
    if any(p.name.startswith(NAMES) for p in record.procs):
        raise runtime.LabError(
            "the lab's circumvention servers were started before and some have stopped; "
            "'didban lab down' and 'didban lab up' start a new lab"
        )
    if missing := missing_programs():
        raise runtime.LabError(f"the circumvention servers need {', '.join(missing)}")
    base = layout.base(state_dir)
    base.mkdir(mode=0o700, exist_ok=True)
    _inet_resolver(record)
    try:
        dir_authorities, fingerprints = tornet.generate(base)
    except tornet.TorNetError as exc:
        raise runtime.LabError(str(exc)) from None
    checks: dict[str, Callable[[], bool]] = {}
    for node in tornet.NODES:
        runtime.spawn(
            record,
            f"tor-{node.nickname}",
            "inet",
            ["tor", "-f", str(tornet.torrc(base, node, dir_authorities))],
        )
    openvpn = _openvpn(record, base, checks)
    wireguard = _wireguard(record, base)
    shadowsocks = _proxies(record, base, checks)
    py = sys.executable
    argv = [py, "-m", "didban.lab.circumvention.services", "--state-dir", str(state_dir)]
    runtime.spawn(record, "circumvention-services", "inet", argv)
    checks["circumvention-services"] = (base / services.READY).exists
    runtime.spawn(record, "snowflake-proxy", "inet", _snowflake_proxy_argv())
    bridge = functools.partial(tornet.obfs4_bridge_line, base, fingerprints["bridge0"])
    checks["tor-bridge0"] = lambda: bridge() is not None
    runtime.wait_ready(record, checks, READY_TIMEOUT)
    _configure_wireguard(record, base)
    ready = base / layout.TOR_READY
    record.circumvention = LabCircumvention(
        tor=tornet.describe(dir_authorities, fingerprints, str(bridge()), ready),
        snowflake=_snowflake(fingerprints["bridge0"]),
        openvpn=openvpn,
        wireguard=wireguard,
        shadowsocks=shadowsocks,
        socks5=f"{plan.CIRCUMVENTION['socks5-proxy']}:{layout.SOCKS5_PORT}",
        http_connect=f"{plan.CIRCUMVENTION['http-proxy']}:{layout.HTTP_PROXY_PORT}",
    )
    state.save(record)
    consensus = functools.partial(tornet.consensus_ready, base)
    tor: dict[str, Callable[[], bool]] = {f"tor-{n.nickname}": consensus for n in tornet.NODES}
    try:
        runtime.wait_ready(record, tor, tor_timeout)
    except runtime.LabError as exc:
        raise runtime.LabError(f"the lab's Tor network did not reach a consensus: {exc}") from None
    ready.write_text(f"{time.time():.3f}\n", encoding="utf-8")
    runtime.write_descriptor(record)
    return record.circumvention


def _inet_resolver(record: LabRecord) -> None:
    """The servers that resolve names (tor's exit, the proxies, snowflake-proxy) ask the
    lab's public resolver, as servers abroad would."""
    ns = record.namespaces["inet"]
    d = runtime.ETC_NETNS / ns
    if str(d) not in record.etc_netns:
        record.etc_netns.append(str(d))
        state.save(record)
    d.mkdir(parents=True, exist_ok=True)
    (d / "resolv.conf").write_text(
        f"nameserver {plan.DEFAULT_UDP_RESOLVER}\noptions timeout:2 attempts:2\n"
    )
    (d / "hosts").write_text("127.0.0.1\tlocalhost\n")


def _private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _openvpn(record: LabRecord, base: Path, checks: dict[str, Callable[[], bool]]) -> LabOpenVPN:
    d = base / "openvpn"
    d.mkdir(mode=0o700)
    authority = trustme.CA(organization_name="didban lab VPN provider")
    authority.cert_pem.write_to_path(str(d / "ca.pem"))
    for who in ("server", "client"):
        leaf = authority.issue_cert(f"{who}.openvpn.lab.test", common_name=f"lab-{who}")
        leaf.cert_chain_pems[0].write_to_path(str(d / f"{who}.pem"))
        _private(d / f"{who}.key", leaf.private_key_pem.bytes())
    address = plan.CIRCUMVENTION["openvpn"]
    inputs = []
    for transport, proto in (("udp", "udp4"), ("tcp", "tcp4-server")):
        conf = d / f"server-{transport}.conf"
        lines = [
            "dev tun", "dev-type tun", f"proto {proto}", f"local {address}",
            f"port {layout.OPENVPN_PORT}", f"ca {d / 'ca.pem'}", f"cert {d / 'server.pem'}",
            f"key {d / 'server.key'}", "dh none", "topology subnet",
            f"server {layout.OPENVPN_SUBNETS[transport]} 255.255.255.240",
            "keepalive 10 60", f"data-ciphers {layout.OPENVPN_CIPHER}",
            f"auth {layout.OPENVPN_AUTH}", "verb 3",
        ]  # fmt: skip
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        proc = runtime.spawn(
            record, f"openvpn-{transport}", "inet", ["openvpn", "--config", str(conf)]
        )
        listening = runtime.listening if transport == "tcp" else stunserver.listening
        checks[proc.name] = functools.partial(listening, proc.pid, address, layout.OPENVPN_PORT)
        inputs.append(
            f"openvpn://lab.corp/?address={address}:{layout.OPENVPN_PORT}&transport={transport}"
        )
    return LabOpenVPN(
        inputs=inputs,
        ca_file=str(d / "ca.pem"),
        cert_file=str(d / "client.pem"),
        key_file=str(d / "client.key"),
        cipher=layout.OPENVPN_CIPHER,
        auth=layout.OPENVPN_AUTH,
    )


def _wg_key() -> tuple[str, str]:
    key = X25519PrivateKey.generate()
    private = base64.b64encode(key.private_bytes_raw()).decode()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, base64.b64encode(public).decode()


def wg_interface(record: LabRecord) -> str:
    """The server's interface name: wireguard-go's control socket path
    (``/var/run/wireguard/<name>.sock``) is shared by every namespace, so it is unique per lab."""
    return f"{record.prefix}wgs"


def _wireguard(record: LabRecord, base: Path) -> LabWireGuard:
    d = base / "wireguard"
    d.mkdir(mode=0o700)
    server_private, server_public = _wg_key()
    client_private, client_public = _wg_key()
    _private(d / "server.key", server_private.encode())
    (d / "client.pub").write_text(client_public)
    runtime.spawn(record, "wireguard", "inet", ["wireguard-go", "-f", wg_interface(record)])
    address = plan.CIRCUMVENTION["wireguard"]
    return LabWireGuard(
        input=f"wireguard://lab.corp/?address={address}:{layout.WG_PORT}",
        server_public_key=server_public,
        client_private_key=client_private,
        client_address=layout.WG_CLIENT_TUNNEL,
        server_address=layout.WG_SERVER_TUNNEL,
    )


def _configure_wireguard(record: LabRecord, base: Path) -> None:
    """Key, port, peer and tunnel address of the running wireguard-go (via its socket)."""
    ns = record.namespaces["inet"]
    ifname = wg_interface(record)
    sock = Path("/var/run/wireguard") / f"{ifname}.sock"
    deadline = time.monotonic() + READY_TIMEOUT
    while not sock.exists():
        if time.monotonic() > deadline:
            raise runtime.LabError(f"wireguard-go did not create {sock}")
        time.sleep(0.02)
    d = base / "wireguard"
    peer = (d / "client.pub").read_text().strip()
    commands = [
        ["ip", "netns", "exec", ns, "wg", "set", ifname, "listen-port", str(layout.WG_PORT),
         "private-key", str(d / "server.key"), "peer", peer,
         "allowed-ips", f"{layout.WG_CLIENT_TUNNEL}/32"],
        ["ip", "-n", ns, "addr", "add", f"{layout.WG_SERVER_TUNNEL}/{layout.WG_PREFIXLEN}",
         "dev", ifname],
        ["ip", "-n", ns, "link", "set", ifname, "up"],
    ]  # fmt: skip
    for argv in commands:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise runtime.LabError(f"{' '.join(argv[3:6])} failed: {r.stderr.strip()}")


def _proxies(
    record: LabRecord, base: Path, checks: dict[str, Callable[[], bool]]
) -> LabShadowsocks:
    password = secrets.token_urlsafe(16)
    ss = plan.CIRCUMVENTION["shadowsocks"]
    argv = [
        "ss-server",
        "-s",
        ss,
        "-p",
        str(layout.SHADOWSOCKS_PORT),
        "-k",
        password,
        "-m",
        layout.SHADOWSOCKS_METHOD,
        "-u",
    ]
    proc = runtime.spawn(record, "shadowsocks", "inet", argv)
    checks[proc.name] = functools.partial(runtime.listening, proc.pid, ss, layout.SHADOWSOCKS_PORT)
    http = plan.CIRCUMVENTION["http-proxy"]
    conf = base / "tinyproxy.conf"
    conf.write_text(
        f"Port {layout.HTTP_PROXY_PORT}\nListen {http}\nTimeout 30\nAllow 0.0.0.0/0\n"
        "ConnectPort 443\nConnectPort 80\nLogLevel Info\nMaxClients 64\n",
        encoding="utf-8",
    )
    proc = runtime.spawn(record, "http-proxy", "inet", ["tinyproxy", "-d", "-c", str(conf)])
    checks[proc.name] = functools.partial(runtime.listening, proc.pid, http, layout.HTTP_PROXY_PORT)
    socks = plan.CIRCUMVENTION["socks5-proxy"]
    argv = ["microsocks", "-i", socks, "-p", str(layout.SOCKS5_PORT)]
    proc = runtime.spawn(record, "socks5-proxy", "inet", argv)
    checks[proc.name] = functools.partial(runtime.listening, proc.pid, socks, layout.SOCKS5_PORT)
    return LabShadowsocks(
        address=ss,
        port=layout.SHADOWSOCKS_PORT,
        password=password,
        method=layout.SHADOWSOCKS_METHOD,
    )


def _snowflake_proxy_argv() -> list[str]:
    return [
        "snowflake-proxy",
        "-broker", f"http://{layout.broker_names()[0]}/",
        "-relay", layout.relay_url(),
        "-allowed-relay-hostname-pattern", f"{layout.relay_host()}$",
        "-allow-non-tls-relay",
        "-stun", f"stun:{layout.STUN_HOST}:3478",
        "-keep-local-addresses",
        "-summary-interval", "24h",
        "-nat-retest-interval", "0s",
        "-verbose",
        "-unsafe-logging",
    ]  # fmt: skip


def _snowflake(bridge_fingerprint: str) -> LabSnowflake:
    return LabSnowflake(
        broker_url=layout.broker_url(),
        front=layout.front(),
        ice=f"stun:{layout.STUN_HOST}:3478",
        bridge=f"snowflake {layout.snowflake_bridge_address()} {bridge_fingerprint}",
    )
