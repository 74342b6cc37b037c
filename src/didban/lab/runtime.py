"""Lab lifecycle: ``up`` (validate, build, start, wait until ready), ``switch``, ``down``.

``up`` validates the profile before touching anything, then records the lab (state.py)
before creating it, so a lab is removable whatever happened: ``down`` signals exactly the
recorded processes (pid + start time), deletes the namespaces by name, removes
``/etc/netns/<ns>`` and the state dir, and tolerates any of it being gone already.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec

from didban.data import apps
from didban.lab import ca, plan, services, state, stunserver, topology
from didban.lab.state import LabRecord, Proc
from didban.model.labinfo import AsnRow, LabDescriptor

READY_TIMEOUT: Final = 30.0
STOP_GRACE: Final = 3.0
SWITCH_WAIT: Final = 5.0
CENSOR_READY: Final = "censor.ready"
CENSOR_LOG: Final = "censor.log"
ETC_NETNS: Final = Path("/etc/netns")
# Processes started by this interpreter (so they can be reaped, not left as zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class LabError(RuntimeError):
    """A lab operation failed; the message is one sentence a user can act on."""


# --- preconditions and profiles ---------------------------------------------------------


def preflight() -> None:
    """Raise LabError unless this process can build a lab (root, ip, iptables)."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, iptables): run it as root")
    packages = {"ip": "iproute2", "iptables": "iptables", stunserver.BINARY: "coturn"}
    for tool, package in packages.items():
        if shutil.which(tool) is None:
            raise LabError(f"the lab needs '{tool}' on PATH (Debian: apt-get install {package})")


def load_profile(name_or_path: str) -> tuple[str, bytes]:
    """(profile name, profile.json bytes) via ``didban.lab.profiles``; LabError if invalid."""
    from didban.lab import profiles  # YAML and the schema: only the commands that load one

    try:
        profile = profiles.load(name_or_path)
    except profiles.ProfileError as exc:
        raise LabError(str(exc)) from None
    return str(profile.name), bytes(profiles.dump_json(profile))


# --- processes --------------------------------------------------------------------------


def _spawn(record: LabRecord, name: str, role: str, argv: list[str]) -> Proc:
    netns = record.namespaces[role]
    logs = Path(record.state_dir) / "logs"
    logs.mkdir(exist_ok=True)
    full = ["ip", "netns", "exec", netns, *argv]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (logs / f"{name}.log").open("ab") as log:
        popen = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    _CHILDREN[popen.pid] = popen
    start = state.start_ticks(popen.pid) or 0
    proc = Proc(name=name, pid=popen.pid, start=start, netns=netns, argv=full)
    record.procs.append(proc)
    state.save(record)
    return proc


def _log_tail(record: LabRecord, name: str, lines: int = 5) -> str:
    try:
        text = (Path(record.state_dir) / "logs" / f"{name}.log").read_text(errors="replace")
    except OSError:
        return ""
    tail = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(tail)


def _listening(pid: int, addr: str, port: int) -> bool:
    """True when ``addr:port`` is a listening TCP socket in the netns of ``pid``."""
    want = f"{struct.unpack('<I', socket.inet_aton(addr))[0]:08X}:{port:04X}"
    try:
        with open(f"/proc/{pid}/net/tcp") as fh:
            next(fh)
            return any((f := line.split())[1] == want and f[3] == "0A" for line in fh)
    except (OSError, StopIteration, IndexError):
        return False


def _wait_ready(record: LabRecord, checks: dict[str, Callable[[], bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(checks)
    by_name = {p.name: p for p in record.procs}
    while pending:
        for name, check in list(pending.items()):
            if check():
                del pending[name]
                continue
            proc = by_name[name]
            if not state.alive(proc):
                raise LabError(
                    f"{name} exited during start-up: {_log_tail(record, name) or 'no output'}"
                )
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(sorted(pending))
            raise LabError(f"timed out after {timeout:.0f} s waiting for {names} to be ready")
        time.sleep(0.02)


def _terminate(procs: list[Proc]) -> None:
    """SIGTERM the live ones (pid + start time verified), then SIGKILL after a grace time."""
    live = [p for p in procs if state.alive(p)]
    for p in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        _reap()
        live = [p for p in live if state.alive(p)]
        if not live:
            break
        time.sleep(0.02)
    for p in live:
        if state.alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
    _reap(block=True, pids={p.pid for p in procs})


def _reap(block: bool = False, pids: set[int] | None = None) -> None:
    for pid, popen in list(_CHILDREN.items()):
        if pids is not None and pid not in pids:
            continue
        try:
            if block:
                popen.wait(timeout=STOP_GRACE)
            elif popen.poll() is None:
                continue
        except subprocess.TimeoutExpired:
            continue
        _CHILDREN.pop(pid, None)


def _netns_pids(netns: str) -> list[int]:
    r = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    return [int(x) for x in r.stdout.split() if x.isdigit()] if r.returncode == 0 else []


# --- descriptor -------------------------------------------------------------------------


def _descriptor(record: LabRecord) -> LabDescriptor:
    sd = Path(record.state_dir)
    return LabDescriptor(
        prefix=record.prefix,
        profile=record.profile,
        state_dir=record.state_dir,
        namespaces=dict(record.namespaces),
        client_netns=record.namespaces["client"],
        ca_file=str(sd / ca.CA_FILE),
        system_resolver=plan.ISP_RESOLVER,
        udp_resolver=f"{plan.DEFAULT_UDP_RESOLVER}:53",
        doh_url=plan.DEFAULT_DOH_URL,
        doh_bootstrap=plan.DEFAULT_UDP_RESOLVER,
        control_url=plan.CONTROL_URL,
        probe_cc=plan.PROBE_CC,
        probe_asn=plan.PROBE_ASN,
        probe_network_name=plan.PROBE_NETWORK_NAME,
        asn_map=[AsnRow(*row) for row in plan.asn_map()],
        censor_log=str(sd / CENSOR_LOG),
        created=record.created,
        pids={p.name: p.pid for p in record.procs},
        bench_domain=plan.BENCH_DOMAIN,
        app_addresses=plan.app_addresses(),
        pinned_cas={a.id: str(ca.app_ca_file(sd, a.id)) for a in apps.apps() if a.ca},
    )


def write_descriptor(record: LabRecord) -> Path:
    path = Path(record.state_dir) / state.DESCRIPTOR_FILE
    state.write_atomic(path, msgspec.json.format(msgspec.json.encode(_descriptor(record))))
    return path


def read_descriptor(state_dir: Path) -> LabDescriptor:
    return msgspec.json.decode((state_dir / state.DESCRIPTOR_FILE).read_bytes(), type=LabDescriptor)


def _point_current(state_dir: Path) -> None:
    link = Path(plan.CURRENT_LINK)
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(state_dir / state.DESCRIPTOR_FILE, tmp)
    os.replace(tmp, link)


def lab_exists(state_dir: Path) -> bool:
    """True when any namespace of the lab in ``state_dir`` still exists."""
    if not state_dir.is_dir():
        return False
    record = state.load(state_dir)
    names = record.namespaces.values() if record else topology.namespaces(state_dir.name).values()
    return bool(topology.existing(names))


def current() -> Path | None:
    """State dir of the current lab (``/run/didban/current-lab``), if it still exists."""
    sd = state.current_dir()
    return sd if sd is not None and sd.is_dir() else None


# --- lifecycle --------------------------------------------------------------------------


def up(
    profile: str = "clean",
    *,
    control: bool = True,
    make_current: bool = True,
    timeout: float = READY_TIMEOUT,
) -> LabDescriptor:
    """Validate ``profile``, build a lab with it, start its processes, wait until ready.

    On any failure everything created so far is removed and LabError is raised."""
    name, profile_json = load_profile(profile)  # validate before touching anything
    preflight()
    prefix = topology.new_prefix()
    sd = state.lab_dir(prefix)
    sd.mkdir(parents=True, mode=0o755)
    try:
        record = LabRecord(
            prefix=prefix,
            state_dir=str(sd),
            namespaces=topology.namespaces(prefix),
            profile=name,
            created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        state.save(record)
        if make_current:
            _point_current(sd)
        _build(record, profile_json, control=control, timeout=timeout)
    except BaseException as exc:
        # the cleanup itself is not interrupted: a second Ctrl-C or SIGTERM would stop it
        # half-way and leave namespaces behind
        with stop_signals_held(), contextlib.suppress(Exception):
            down(sd)
        if isinstance(exc, LabError | topology.TopologyError):
            raise LabError(f"lab up failed: {exc}") from None
        raise
    return _descriptor(record)


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP ignored for the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in stops}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _build(record: LabRecord, profile_json: bytes, *, control: bool, timeout: float) -> None:
    sd = Path(record.state_dir)
    ns = record.namespaces
    ca_file = ca.create(sd)
    for app in apps.apps():
        if app.ca:  # the lab's stand-in for the CA the app pins (Signal's)
            ca.create_app_ca(sd, app.id, app.name)
    topology.build(record.prefix)
    resolv = {"client": plan.ISP_RESOLVER, "control": plan.DEFAULT_UDP_RESOLVER}
    for role, resolver in resolv.items():
        d = ETC_NETNS / ns[role]
        record.etc_netns.append(str(d))
        state.save(record)
        d.mkdir(parents=True, exist_ok=True)
        (d / "resolv.conf").write_text(f"nameserver {resolver}\noptions timeout:2 attempts:2\n")
        (d / "hosts").write_text("127.0.0.1\tlocalhost\n")
    state.write_atomic(sd / state.PROFILE_FILE, profile_json)
    (sd / CENSOR_LOG).touch()
    write_descriptor(record)

    py = sys.executable
    checks: dict[str, Callable[[], bool]] = {}
    for role in services.ROLES:
        pname = f"services-{role}"
        _spawn(record, pname, role, [py, "-m", "didban.lab.services", role, "--state-dir", str(sd)])
        ready = services.ready_file(sd, role)
        checks[pname] = ready.exists
    for name, address, port in stunserver.servers():
        stun = _spawn(record, f"stun-{name}", "inet", stunserver.argv(address, port, sd))
        checks[stun.name] = functools.partial(stunserver.listening, stun.pid, address, port)
    _spawn(record, "censor", "isp", [py, "-m", "didban.lab.censor", "--state-dir", str(sd)])
    checks["censor"] = (sd / CENSOR_READY).exists
    if control:
        argv = [
            py, "-m", "didban.cli", "control", "serve",
            "--listen", f"{plan.CONTROL_ADDR}:80",
            "--resolver", f"{plan.DEFAULT_UDP_RESOLVER}:53",
            "--ca-file", str(ca_file),
        ]  # fmt: skip
        proc = _spawn(record, "control", "control", argv)
        checks["control"] = lambda: _listening(proc.pid, plan.CONTROL_ADDR, 80)
    _wait_ready(record, checks, timeout)
    write_descriptor(record)


def _resolve_target(target: str | Path | None) -> Path:
    if target is None:
        sd = state.current_dir()
        if sd is None or not sd.exists():
            raise LabError("no lab is up (start one with: didban lab up --profile clean)")
        return sd
    p = Path(target)
    if p.is_absolute():
        return p
    return state.lab_dir(str(target))


def down(target: str | Path | None = None) -> list[str]:
    """Remove one lab (the current one, a prefix, or a state dir); return deleted namespaces.

    Works on a lab whose processes died or whose ``up`` stopped half way."""
    sd = _resolve_target(target)
    record = state.load(sd)
    prefix = record.prefix if record else sd.name
    names = (
        list(record.namespaces.values()) if record else list(topology.namespaces(prefix).values())
    )
    if not state.PREFIX_RE.match(prefix):
        raise LabError(f"'{prefix}' is not a lab prefix")
    if record:
        _terminate(list(reversed(record.procs)))
    # Anything still running inside the lab's namespaces belongs to the lab (e.g. a tool
    # started with `lab exec`): stop it by pid so the namespaces and veths really go away.
    stray = [pid for n in topology.existing(names) for pid in _netns_pids(n)]
    for pid in stray:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deleted = topology.destroy(names)
    for d in [*(record.etc_netns if record else []), *(str(ETC_NETNS / n) for n in names)]:
        path = Path(d)
        if path.parent == ETC_NETNS and path.name in names:
            shutil.rmtree(path, ignore_errors=True)
    if state.current_dir() == sd:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(plan.CURRENT_LINK)
    shutil.rmtree(sd, ignore_errors=True)
    return deleted


def down_all() -> list[str]:
    """Remove every lab recorded under ``/run/didban/labs``; return the prefixes removed."""
    removed: list[str] = []
    for sd in state.labs():
        down(sd)
        removed.append(sd.name)
    link = Path(plan.CURRENT_LINK)
    if link.is_symlink() and not link.exists():
        link.unlink()
    return removed


def switch(profile: str, target: str | Path | None = None, *, wait: float = SWITCH_WAIT) -> str:
    """Validate ``profile``, make it the lab's profile and tell the censor (SIGHUP).

    Then wait (at most ``wait`` seconds) for the censor's ``engine`` line in the censor log
    that follows the reload; if the censor reports that the reload failed, the previous
    profile is restored and LabError raised."""
    name, profile_json = load_profile(profile)
    sd = _resolve_target(target)
    record = state.load(sd)
    if record is None or not lab_exists(sd):
        raise LabError(f"no lab at {sd}")
    recorded = next((p for p in record.procs if p.name == "censor"), None)
    if recorded is not None and not state.alive(recorded):
        raise LabError(
            f"the lab's censor (pid {recorded.pid}) is not running, so '{name}' cannot be "
            "applied; 'didban lab down' and 'didban lab up' start a new lab"
        )
    profile_file = sd / state.PROFILE_FILE
    previous = (profile_file.read_bytes(), record.profile)
    log = sd / CENSOR_LOG
    offset = log.stat().st_size if log.exists() else 0
    state.write_atomic(profile_file, profile_json)
    record.profile = name
    state.save(record)
    write_descriptor(record)
    censor = recorded
    if censor is None:  # a lab started without a censor (no iptables): nothing to tell
        return name
    os.kill(censor.pid, signal.SIGHUP)
    failure = _await_reload(log, offset, wait)
    if failure is not None:
        state.write_atomic(profile_file, previous[0])
        record.profile = previous[1]
        state.save(record)
        write_descriptor(record)
        os.kill(censor.pid, signal.SIGHUP)
        raise LabError(f"the censor could not apply '{name}': {failure}")
    return name


def _await_reload(log: Path, offset: int, wait: float) -> str | None:
    """Watch the censor log from ``offset`` for the censor's next ``engine`` line; return
    its detail when it reports a failed reload, else None (also on timeout)."""
    deadline = time.monotonic() + wait
    buf = b""
    while time.monotonic() < deadline:
        try:
            with log.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except OSError:
            chunk = b""
        offset += len(chunk)
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            try:
                entry = msgspec.json.decode(line)
            except msgspec.DecodeError:
                continue
            if isinstance(entry, dict) and entry.get("rule") == "engine":
                action = str(entry.get("action", ""))
                return str(entry.get("detail") or action) if "failed" in action else None
        time.sleep(0.02)
    return None


def status(target: str | Path | None = None) -> dict[str, object]:
    """Profile, namespaces, processes (alive or not) and rules fired so far."""
    sd = _resolve_target(target)
    record = state.load(sd)
    if record is None:
        raise LabError(f"no lab record in {sd}")
    fired: dict[str, int] = {}
    try:
        with (sd / CENSOR_LOG).open("rb") as fh:
            for line in fh:
                try:
                    rule = str(msgspec.json.decode(line).get("rule", "?"))
                except (msgspec.DecodeError, AttributeError):
                    continue
                if rule != "engine":  # the censor's own start/reload/stop lines
                    fired[rule] = fired.get(rule, 0) + 1
    except OSError:
        pass
    present = set(topology.existing(record.namespaces.values()))
    return {
        "prefix": record.prefix,
        "profile": record.profile,
        "state_dir": record.state_dir,
        "created": record.created,
        "namespaces": {role: (n, n in present) for role, n in record.namespaces.items()},
        "processes": {p.name: (p.pid, state.alive(p)) for p in record.procs},
        "fired": fired,
    }
