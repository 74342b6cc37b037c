"""The lab's network: namespaces, veth links, addresses, routes and sysctls (plan.py made real).

Everything is created with ``ip -n <ns> -batch -`` (one ``ip`` process per namespace and
phase, run in parallel) so a lab comes up in a fraction of a second. Veth pairs are created
directly inside the namespaces (``ip -n A link add v-B type veth peer name v-A netns B``):
no interface ever exists in the root namespace. In every namespace the interface toward
role R is named ``v-<R>``. Service, resolver, blockpage and pool addresses live on the
owning namespace's ``lo``. Routes cover only the lab ranges (no default route anywhere),
so an address outside the lab is unreachable from every lab namespace.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from didban.lab import plan, zone

NETNS_DIR: Final = Path("/run/netns")
LAB_RANGES: Final = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "10.10.34.0/24")
PREFIX_STEM: Final = "db"


class TopologyError(RuntimeError):
    """An ``ip`` command failed while building or removing a lab."""


def new_prefix() -> str:
    """A fresh lab prefix (``db`` + 4 hex + ``-``) not used by any namespace or lab dir."""
    for _ in range(64):
        prefix = f"{PREFIX_STEM}{secrets.token_hex(2)}-"
        taken = any((NETNS_DIR / f"{prefix}{r}").exists() for r in plan.ROLES)
        if not taken and not (Path(plan.RUN_DIR) / prefix).exists():
            return prefix
    raise TopologyError("could not find a free lab prefix")


def namespaces(prefix: str) -> dict[str, str]:
    """role -> namespace name."""
    return {role: f"{prefix}{role}" for role in plan.ROLES}


def _gateway(role: str, peer: str) -> str:
    """The address of ``peer`` on the link between ``role`` and ``peer``."""
    for a, b, addr_a, addr_b, _ in plan.LINKS:
        if (a, b) == (role, peer):
            return addr_b
        if (b, a) == (role, peer):
            return addr_a
    raise KeyError(f"no link between {role} and {peer}")


def _lo_addresses(role: str) -> list[str]:
    if role == "domestic":
        addrs = [
            plan.ISP_RESOLVER,
            *plan.BLOCKPAGE_HOSTS,
            *zone.addresses(domestic=True),
            plan.SINKHOLE_REFUSE,  # nothing listens there: connections are refused
        ]
    elif role == "inet":
        addrs = [
            *zone.addresses(domestic=False),
            *zone.resolver_addrs(),
            *plan.EXTRA_POOL,
            *plan.APP_POOL,
            *plan.CIRC_POOL,
        ]
    elif role == "control":
        addrs = [plan.CONTROL_ADDR]
    else:
        addrs = []
    return list(dict.fromkeys(addrs))


def _routes(role: str) -> list[str]:
    """``ip route`` arguments for ``role``: only the lab ranges, never a default route."""
    if role in ("client", "control"):
        gw = _gateway(role, "isp" if role == "client" else "intl")
        return [f"{net} via {gw}" for net in LAB_RANGES]
    if role == "isp":
        dom, intl = _gateway("isp", "domestic"), _gateway("isp", "intl")
        return [
            *(f"{net} via {dom}" for net in plan.DOMESTIC_PREFIXES),
            f"198.51.100.0/24 via {intl}",
            f"203.0.113.0/24 via {intl}",
            *(
                f"{net} via {intl}"
                for a, b, _, _, _ in plan.LINKS
                for net in [_link_net(a, b)]
                if "intl" in (a, b) and "isp" not in (a, b)
            ),
        ]
    if role == "domestic":
        gw = _gateway("domestic", "isp")
        # Unassigned domestic addresses are unreachable here instead of bouncing to the isp.
        return [
            f"192.0.2.0/24 via {gw}",
            f"198.51.100.0/24 via {gw}",
            f"203.0.113.0/24 via {gw}",
            *(f"unreachable {net}" for net in plan.DOMESTIC_PREFIXES),
        ]
    if role == "intl":
        isp, inet, ctl = (_gateway("intl", r) for r in ("isp", "inet", "control"))
        return [
            f"192.0.2.0/24 via {isp}",
            f"10.10.34.0/24 via {isp}",
            f"198.51.100.0/24 via {inet}",
            f"203.0.113.0/24 via {inet}",
            f"{plan.CONTROL_ADDR}/32 via {ctl}",
        ]
    if role == "inet":
        gw = _gateway("inet", "intl")
        return [
            f"192.0.2.0/24 via {gw}",
            f"10.10.34.0/24 via {gw}",
            f"{plan.CONTROL_ADDR}/32 via {gw}",
            "unreachable 198.51.100.0/24",
            "unreachable 203.0.113.0/24",
        ]
    raise KeyError(role)


def _link_net(a: str, b: str) -> str:
    for la, lb, addr_a, _, plen in plan.LINKS:
        if (la, lb) == (a, b):
            return str(ipaddress.ip_interface(f"{addr_a}/{plen}").network)
    raise KeyError((a, b))


def _sysctls(role: str) -> dict[str, str]:
    values = {
        "net/ipv6/conf/all/disable_ipv6": "1",
        "net/ipv6/conf/default/disable_ipv6": "1",
        "net/ipv4/conf/all/rp_filter": "0",
        "net/ipv4/conf/default/rp_filter": "0",
    }
    if role in ("isp", "intl"):
        values["net/ipv4/ip_forward"] = "1"
    return values


def _run_parallel(jobs: Mapping[str, tuple[list[str], str]]) -> None:
    """Run ``{label: (argv, stdin)}`` concurrently; raise with every failure's stderr."""
    procs = {
        label: subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for label, (argv, _) in jobs.items()
    }
    errors: list[str] = []
    for label, proc in procs.items():
        _, err = proc.communicate(jobs[label][1], timeout=30)
        if proc.returncode != 0:
            errors.append(f"{label}: {err.strip() or f'exit {proc.returncode}'}")
    if errors:
        raise TopologyError("; ".join(errors))


def _batch(ns: str | None, lines: Iterable[str]) -> tuple[list[str], str]:
    argv = ["ip", *(["-n", ns] if ns else []), "-batch", "-"]
    return argv, "".join(f"{line}\n" for line in lines)


def build(prefix: str) -> dict[str, str]:
    """Create the lab's namespaces and network; return role -> namespace name.

    On failure the caller removes the namespaces with :func:`destroy` (by name)."""
    names = namespaces(prefix)
    _run_parallel({"netns": _batch(None, (f"netns add {n}" for n in names.values()))})

    # sysctls before any interface exists, so new veths never get IPv6 addresses.
    script = {
        role: " ".join(f"echo {v} > /proc/sys/{k};" for k, v in _sysctls(role).items())
        for role in names
    }
    _run_parallel(
        {
            f"sysctl {ns}": (["ip", "netns", "exec", ns, "sh", "-ec", script[role]], "")
            for role, ns in names.items()
        }
    )

    links: dict[str, list[str]] = {}
    for a, b, *_ in plan.LINKS:
        links.setdefault(a, []).append(f"link add v-{b} type veth peer name v-{a} netns {names[b]}")
    _run_parallel({f"links {names[a]}": _batch(names[a], cmds) for a, cmds in links.items()})

    config: dict[str, list[str]] = {role: ["link set lo up"] for role in names}
    for a, b, addr_a, addr_b, plen in plan.LINKS:
        config[a] += [f"addr add {addr_a}/{plen} dev v-{b}", f"link set v-{b} up"]
        config[b] += [f"addr add {addr_b}/{plen} dev v-{a}", f"link set v-{a} up"]
    for role in names:
        config[role] += [f"addr add {addr}/32 dev lo" for addr in _lo_addresses(role)]
        config[role] += [f"route add {r}" for r in _routes(role)]
    _run_parallel({f"config {names[r]}": _batch(names[r], c) for r, c in config.items()})
    return names


def existing(names: Iterable[str]) -> list[str]:
    return [n for n in names if (NETNS_DIR / n).exists()]


def destroy(names: Iterable[str]) -> list[str]:
    """Delete the given namespaces (those that still exist); return the ones deleted."""
    present = existing(names)
    if present:
        # -force: keep going when one is already gone (a concurrent down).
        proc = subprocess.run(
            ["ip", "-force", "-batch", "-"],
            input="".join(f"netns del {n}\n" for n in present),
            capture_output=True,
            text=True,
            check=False,
        )
        left = existing(present)
        if left:
            raise TopologyError(
                f"could not delete namespaces {', '.join(left)}: {proc.stderr.strip()}"
            )
    return present


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except OSError:
        return None
