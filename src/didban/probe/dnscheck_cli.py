"""``didban dnscheck DOMAIN...``: ask many resolvers over UDP, TCP, DoT and DoH, side by side.

Defaults: on a real network Google, Cloudflare and Quad9 over every transport; with
``--lab`` the lab's resolver (UDP, TCP, DoT at the DoH server, DoH). Output is one
``dnscheck`` measurement per domain in a JSONL file, and a table of the answers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from didban.files.tables import print_table
from didban.net.stream import format_address
from didban.probe import consent, identity, labmode
from didban.probe.cliutil import (
    AROUND_NOTE,
    argv_with_output,
    ask,
    fail,
    output_target,
    stop_signals_interrupt,
)
from didban.probe.config import DOH_BOOTSTRAP, ConfigError, check_http_url, parse_resolver
from didban.probe.dnscheck import DNSCheck, ResolverSpec
from didban.probe.lists import url_problem
from didban.probe.output import JsonlWriter, OutputError
from didban.probe.scrub import Scrubber, local_addresses

REAL_DEFAULTS: tuple[tuple[str, str, str], ...] = (
    # (ip, DoT/DoH server name, DoH URL)
    ("8.8.8.8", "dns.google", "https://dns.google/dns-query"),
    ("1.1.1.1", "cloudflare-dns.com", "https://cloudflare-dns.com/dns-query"),
    ("9.9.9.9", "dns.quad9.net", "https://dns.quad9.net/dns-query"),
)


def _specs_real() -> list[ResolverSpec]:
    out: list[ResolverSpec] = []
    for ip, name, url in REAL_DEFAULTS:
        out += [
            ResolverSpec("udp", format_address(ip, 53)),
            ResolverSpec("tcp", format_address(ip, 53)),
            ResolverSpec("dot", format_address(ip, 853), server_name=name),
            ResolverSpec("doh", format_address(ip, 443), url=url, server_name=name),
        ]
    return out


def _doh_spec(url: str, bootstrap: str | None) -> ResolverSpec:
    host = urlsplit(url).hostname or ""
    ip = bootstrap or DOH_BOOTSTRAP.get(host)
    if ip is None:
        raise ConfigError(f"--doh {url}: no bootstrap address known; add --doh-bootstrap IP")
    rip, rport = parse_resolver(ip, "--doh-bootstrap", 443)
    return ResolverSpec("doh", format_address(rip, rport), url=url, server_name=host)


def dnscheck(
    domains: list[str] = typer.Argument(..., metavar="DOMAIN", help="Domain names to look up."),
    resolvers: list[str] = typer.Option(
        [],
        "--resolver",
        metavar="IP[:PORT]",
        help="A resolver, asked over UDP and TCP (repeatable).",
    ),
    dot: list[str] = typer.Option(
        [],
        "--dot",
        metavar="IP[:PORT][#NAME]",
        help="A DoT resolver and its TLS server name (repeatable).",
    ),
    doh: list[str] = typer.Option([], "--doh", metavar="URL", help="A DoH URL (repeatable)."),
    doh_bootstrap: str | None = typer.Option(
        None, "--doh-bootstrap", metavar="IP[:PORT]", help="Where to reach the --doh servers."
    ),
    ca_file: Path | None = typer.Option(None, "--ca-file", metavar="FILE", help="PEM CA bundle."),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="FILE",
        help="JSONL output file (default: didban-dnscheck-<UTC timestamp>.jsonl).",
    ),
    append: bool = typer.Option(False, "--append", help="Append to an existing --output."),
    lab: bool = typer.Option(False, "--lab", help="Run inside the current lab."),
    accept_risk: bool = typer.Option(False, "--accept-risk", help="Accept the risk notice."),
    probe_cc: str | None = typer.Option(
        None,
        "--probe-cc",
        metavar="CC",
        help="Country code (default: offline lookup of a public address).",
    ),
    probe_asn: str | None = typer.Option(
        None,
        "--probe-asn",
        metavar="ASN",
        help="AS number (default: offline lookup of a public address).",
    ),
) -> None:
    """Look each DOMAIN up with many resolvers and transports; record injected replies.

    Exit codes: 0 every domain measured (failures are data); 1 the risk notice was not
    accepted; 2 bad input (nothing measured); 130 interrupted.
    """
    for d in domains:
        if url_problem(f"http://{d}/") is not None or "/" in d or ":" in d:
            fail("dnscheck", f"{d!r} is not a domain name")
    specs: list[ResolverSpec] = []
    try:
        for r in resolvers:
            ip, port = parse_resolver(r)
            specs += [
                ResolverSpec("udp", format_address(ip, port)),
                ResolverSpec("tcp", format_address(ip, port)),
            ]
        if doh_bootstrap is not None:
            parse_resolver(doh_bootstrap, "--doh-bootstrap", 443)
        for d in dot:
            addr, hashed, name = d.partition("#")
            if hashed and not name:
                raise ConfigError(f"--dot {d!r}: the server name after '#' is empty")
            ip, port = parse_resolver(addr, "--dot", 853)
            specs.append(ResolverSpec("dot", format_address(ip, port), server_name=name))
        for u in doh:
            check_http_url("--doh", u, https_only=True)
            specs.append(_doh_spec(u, doh_bootstrap))
        cc = identity.normalise_cc(probe_cc) if probe_cc else None
        asn = identity.normalise_asn(probe_asn) if probe_asn else None
    except (ConfigError, identity.IdentityError) as exc:
        fail("dnscheck", str(exc))
    if ca_file is not None:
        from didban.net.verify import ca_file_problem  # cryptography: only when needed

        if problem := ca_file_problem(ca_file):
            fail("dnscheck", problem)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = output_target("dnscheck", output, append, Path(f"didban-dnscheck-{stamp}.jsonl"))

    lab_profile = None
    ca = str(ca_file) if ca_file else None
    addrs = local_addresses()
    if not lab and labmode.around() is not None:
        typer.echo(AROUND_NOTE, err=True)
        lab = True
    if lab:
        try:
            desc = labmode.load()
        except labmode.LabModeError as exc:
            fail("dnscheck", str(exc))
        if not labmode.inside(desc):
            try:
                code = labmode.reexec(desc, argv_with_output(sys.argv[1:], out))
            except labmode.LabModeError as exc:
                fail("dnscheck", str(exc))
            raise typer.Exit(code)
        lab_profile = desc.profile
        ca = ca or desc.ca_file
        if not specs:
            ip, port = parse_resolver(desc.udp_resolver)
            name = urlsplit(desc.doh_url).hostname or ""
            specs = [
                ResolverSpec("udp", format_address(ip, port)),
                ResolverSpec("tcp", format_address(ip, port)),
                ResolverSpec("dot", format_address(desc.doh_bootstrap, 853), server_name=name),
                ResolverSpec(
                    "doh",
                    format_address(desc.doh_bootstrap, 443),
                    url=desc.doh_url,
                    server_name=name,
                ),
            ]
        ident = identity.resolve(addresses=addrs, table=desc.asn_map, cc=cc, asn=asn)
    else:
        try:
            consent.ensure(accept_risk=accept_risk, ask=ask)
        except consent.ConsentRefused as exc:
            fail("dnscheck", str(exc), code=1)
        specs = specs or _specs_real()
        public = identity.public_addresses(addrs)
        addrs = addrs | set(public)
        ident = identity.resolve(public=public, cc=cc, asn=asn)

    console = Console(stderr=True)
    try:
        writer = JsonlWriter(out, Scrubber(addrs), append=append)
    except OutputError as exc:
        fail("dnscheck", str(exc))
    exp = DNSCheck(specs, ident, ca_file=ca, lab_profile=lab_profile)

    async def all_domains() -> None:
        for d in domains:
            raw = writer.write(await exp.measure_domain(d))
            print_table(console, answers_table(msgspec.json.decode(raw)))

    try:
        with stop_signals_interrupt():
            asyncio.run(all_domains())
    except KeyboardInterrupt:
        writer.close()
        raise typer.Exit(130) from None
    writer.close()
    console.print(f"{writer.count} dnscheck measurement(s) written to {out}")


def answers_table(m: dict[str, Any]) -> Table:
    """Per resolver: the answers (A/AAAA), the lookup's failure (the A query's: an AAAA
    query without an answer is no failure of the lookup), late replies — not a verdict."""
    tk = m.get("test_keys") or {}
    t = Table(title=f"dnscheck {tk.get('domain')}")
    for c in ("resolver", "answers", "failure (A)", "late replies"):
        t.add_column(c, overflow="fold")
    for key, lk in (tk.get("lookups") or {}).items():
        answers = [
            a.get("ipv4") or a.get("ipv6")
            for q in lk.get("queries") or []
            for a in q.get("answers") or []
            if a.get("ipv4") or a.get("ipv6")
        ]
        dups = [
            a.get("ipv4") or a.get("ipv6") or "?"
            for d in lk.get("x_dns_duplicate_responses") or []
            for a in d.get("answers") or []
            if a.get("ipv4") or a.get("ipv6")
        ]
        t.add_row(key, " ".join(answers) or "-", lk.get("failure") or "-", " ".join(dups) or "-")
    return t
