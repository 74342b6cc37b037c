"""Commands of ``didban.probe``: ``didban run`` (web_connectivity over a test list, or the
experiments ``--test`` selects: didban.probe.registry) and ``didban dnscheck``.
``register(app)`` adds them to the ``didban`` command.

Every bad flag, URL or file ends the command with one sentence on stderr and exit code 2,
before anything is measured or written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from didban.files.tables import print_table
from didban.probe import consent, identity, labmode, lists, registry
from didban.probe.cliutil import (
    AROUND_NOTE,
    argv_with_output,
    argv_without,
    ask,
    fail,
    output_target,
    stop_signals_interrupt,
)
from didban.probe.config import (
    DEFAULT_CONTROL_URL,
    DEFAULT_DOH_URL,
    DEFAULT_UDP_RESOLVER,
    ConfigError,
    ProbeConfig,
    check_http_url,
    parse_resolver,
)
from didban.probe.envelope import ProbeIdentity
from didban.probe.output import JsonlWriter, OutputError
from didban.probe.runner import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DEADLINE,
    DEFAULT_PER_HOST,
    RunOptions,
    RunResult,
    summary_table,
)
from didban.probe.scrub import Scrubber, local_addresses
from didban.probe.summary import control_warning, run_line

# every URL was measured and written, but not every measurement reached the collector
# (they stay in the upload queue)
EXIT_NOT_UPLOADED = 3


def default_output(now: dt.datetime | None = None) -> Path:
    now = now or dt.datetime.now(dt.UTC)
    return Path(f"didban-{now.strftime('%Y%m%dT%H%M%SZ')}.jsonl")


def run(
    tests: list[str] = typer.Option([], "--test", help=registry.help_text()),
    list_files: list[Path] = typer.Option(
        [], "--list", help="Citizen Lab test-list CSV (repeatable)."
    ),
    urls: list[str] = typer.Option([], "--url", help="A URL to measure (repeatable)."),
    categories: list[str] = typer.Option(
        [], "--category", help="Only list rows with this category code (repeatable)."
    ),
    control: str | None = typer.Option(
        None, "--control", help=f"Test helper URL (default: {DEFAULT_CONTROL_URL})."
    ),
    resolver: str | None = typer.Option(
        None, "--resolver", help=f"UDP resolver IP[:PORT] (default: {DEFAULT_UDP_RESOLVER})."
    ),
    doh: str | None = typer.Option(
        None, "--doh", help=f"DNS-over-HTTPS URL (default: {DEFAULT_DOH_URL})."
    ),
    doh_bootstrap: str | None = typer.Option(
        None, "--doh-bootstrap", help="IP address of the DoH server (no lookup needed)."
    ),
    ca_file: Path | None = typer.Option(
        None, "--ca-file", help="PEM CA bundle for TLS verification (default: system roots)."
    ),
    concurrency: int = typer.Option(
        DEFAULT_CONCURRENCY, "--concurrency", help="URLs measured at once."
    ),
    per_host: int = typer.Option(DEFAULT_PER_HOST, "--per-host", help="URLs per host at once."),
    deadline: float = typer.Option(DEFAULT_DEADLINE, "--deadline", help="Seconds per URL."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="JSONL output (default: didban-<timestamp>.jsonl)."
    ),
    append: bool = typer.Option(False, "--append", help="Append to an existing --output."),
    lab: bool = typer.Option(False, "--lab", help="Run inside the current lab's client namespace."),
    accept_risk: bool = typer.Option(
        False, "--accept-risk", help="Accept the risk notice without being asked."
    ),
    upload: str | None = typer.Option(
        None, "--upload", help="Also submit every measurement to this OONI-style collector."
    ),
    upload_queue: Path | None = typer.Option(
        None, "--upload-queue", hidden=True, help="Queue each measurement here (lab child)."
    ),
    probe_cc: str | None = typer.Option(
        None,
        "--probe-cc",
        help="Country code, e.g. IR (default: looked up offline from the public address).",
    ),
    probe_asn: str | None = typer.Option(
        None,
        "--probe-asn",
        help="AS number, e.g. AS197207 (default: looked up offline from the public address).",
    ),
    no_quic: bool = typer.Option(False, "--no-quic", help="Skip the QUIC/HTTP3 attempts."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Measure web connectivity for a test list (default: the built-in list), or other
    experiments chosen with --test (IM apps, STUN, HTTP/3).

    Exit codes: 0 every URL measured (failures are data); 1 a URL could not be measured
    at all (listed at the end), or the risk notice was not accepted; 2 bad input (nothing
    measured); 3 measured and written, but not every measurement reached the --upload
    collector (they stay queued); 130 interrupted.
    """
    # ---- validate everything before measuring or writing anything
    try:
        specs = registry.select(tests)
    except registry.UnknownTest as exc:
        fail("run", str(exc))
    if not specs:
        fail("run", "no experiment selected: the circumvention group has none yet")
    if not 1 <= concurrency <= 4096:
        fail("run", f"--concurrency must be between 1 and 4096, not {concurrency}")
    if not 1 <= per_host <= 1024:
        fail("run", f"--per-host must be between 1 and 1024, not {per_host}")
    if not 1.0 <= deadline <= 3600.0:
        fail("run", f"--deadline must be between 1 and 3600 seconds, not {deadline}")
    try:
        entries = lists.build(files=list_files, urls=urls, categories=categories)
    except lists.ListError as exc:
        fail("run", str(exc))
    try:
        udp = parse_resolver(resolver) if resolver else None
        if doh:
            check_http_url("--doh", doh, https_only=True)
        if control:
            check_http_url("--control", control)
        if upload:
            check_http_url("--upload", upload)
        if doh_bootstrap:
            parse_resolver(doh_bootstrap, "--doh-bootstrap", 443)
    except ConfigError as exc:
        fail("run", str(exc))
    if ca_file is not None:
        from didban.net.verify import ca_file_problem  # cryptography: only when needed

        if problem := ca_file_problem(ca_file):
            fail("run", problem)
    try:
        ident_cc = identity.normalise_cc(probe_cc) if probe_cc else None
        ident_asn = identity.normalise_asn(probe_asn) if probe_asn else None
    except identity.IdentityError as exc:
        fail("run", str(exc))
    out = output_target("run", output, append, default_output())

    lab_desc = None
    if not lab and labmode.around() is not None:
        typer.echo(AROUND_NOTE, err=True)
        lab = True
    if lab:
        try:
            lab_desc = labmode.load()
        except labmode.LabModeError as exc:
            fail("run", str(exc))
        if not labmode.inside(lab_desc):
            argv = argv_without(argv_with_output(sys.argv[1:], out), "--upload")
            if upload:
                # The collector is reachable from here, not from the lab: the child queues
                # each measurement as it writes it, and this process sends the queue.
                argv += ["--upload-queue", str(upload_queue_dir())]
            try:
                code = labmode.reexec(lab_desc, argv)
            except labmode.LabModeError as exc:
                fail("run", str(exc))
            if upload and code == 0 and not _flush(upload, Console(stderr=True)):
                code = EXIT_NOT_UPLOADED  # (not after an interrupt: the user asked it to stop)
            raise typer.Exit(code)
    else:
        try:
            consent.ensure(accept_risk=accept_risk, ask=ask)
        except consent.ConsentRefused as exc:
            fail("run", str(exc), code=1)

    # ---- configuration
    cfg = ProbeConfig(quic=not no_quic)
    scrub_addrs = set(local_addresses())
    if lab_desc is not None:
        cfg.udp_resolver = parse_resolver(lab_desc.udp_resolver)
        cfg.doh_url = lab_desc.doh_url
        cfg.doh_bootstrap = lab_desc.doh_bootstrap
        cfg.control_url = lab_desc.control_url
        cfg.ca_file = lab_desc.ca_file
        cfg.lab_profile = lab_desc.profile
        cfg.address_map = dict(lab_desc.app_addresses)
        cfg.pinned_cas = {app: [ca] for app, ca in lab_desc.pinned_cas.items()}
        cfg.asn_rows = list(lab_desc.asn_map)
        ident = identity.resolve(
            addresses=scrub_addrs,
            table=lab_desc.asn_map,
            cc=ident_cc,
            asn=ident_asn,
        )
        if ident.probe_cc == "ZZ" and ident_cc is None:
            ident = identity.resolve(
                cc=lab_desc.probe_cc,
                asn=ident_asn or lab_desc.probe_asn,
                network_name=lab_desc.probe_network_name,
            )
    if udp is not None:
        cfg.udp_resolver = udp
    if doh:
        cfg.doh_url = doh
    if doh_bootstrap:
        cfg.doh_bootstrap = doh_bootstrap
    if control:
        cfg.control_url = control
    if ca_file is not None:
        cfg.ca_file = str(ca_file)
    if lab_desc is None:
        # The public address is looked up offline, then scrubbed like the local ones.
        public = asyncio.run(identity.discover_public(scrub_addrs, cfg.control_url, cfg.ca_file))
        scrub_addrs.update(public)
        ident = identity.resolve(public=public, cc=ident_cc, asn=ident_asn)

    execute(
        entries,
        cfg,
        ident,
        out,
        RunOptions(
            concurrency=concurrency,
            per_host=per_host,
            deadline=deadline,
            progress=not no_progress,
        ),
        scrubber=Scrubber(scrub_addrs),
        append=append,
        upload=upload,
        queue_dir=upload_queue or (upload_queue_dir() if upload else None),
        specs=specs,
        explicit=bool(urls),
    )


def execute(
    entries: list[lists.ListEntry],
    cfg: ProbeConfig,
    ident: ProbeIdentity,
    out: Path,
    options: RunOptions,
    *,
    scrubber: Scrubber,
    append: bool = False,
    upload: str | None = None,
    queue_dir: Path | None = None,
    specs: list[registry.Spec] | None = None,
    explicit: bool = False,
) -> None:
    """Run the experiments ``specs`` (default: web_connectivity) over their inputs — the
    test list ``entries`` for the web tests — into ``out``; print the summary; exit code."""
    specs = specs or registry.select([])
    console = Console(stderr=True)
    try:
        queue = _queue(queue_dir) if queue_dir is not None else None
        writer = JsonlWriter(out, scrubber, append=append, queue=queue)
    except OutputError as exc:
        fail("run", str(exc))
    for note in ident.notes:
        console.print(f"[yellow]note:[/] {note}")
    batches = [(spec.make(cfg, ident), spec.inputs(entries, explicit)) for spec in specs]
    n = sum(len(inputs) for _, inputs in batches)
    names = ", ".join(spec.name for spec in specs)
    console.print(
        f"measuring {n} input{'s' if n != 1 else ''} with {names} "
        f"(concurrency {options.concurrency}) → {out}"
    )
    result = RunResult()
    interrupted = False
    from didban.probe import runner

    try:
        with stop_signals_interrupt():
            asyncio.run(runner.run_many(batches, writer, options, console, result))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        writer.close()
    print_table(console, summary_table(result, [e for _, inputs in batches for e in inputs]))
    for err in result.errors:
        console.print(f"[red]error:[/] {err}")
    if warning := control_warning(result.outcomes):
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(run_line(result.written, out, result.elapsed, result.failed_steps, interrupted))
    uploaded = _flush(upload, console) if upload and not interrupted else True
    if interrupted:
        raise typer.Exit(130)
    if result.errors:
        raise typer.Exit(1)
    if not uploaded:
        raise typer.Exit(EXIT_NOT_UPLOADED)


def upload_queue_dir() -> Path:
    """The probe's durable upload queue: ``$XDG_STATE_HOME/didban/upload-queue``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "didban" / "upload-queue"


def _queue(directory: Path) -> Any:
    from didban.probe.upload import UploadQueue

    return UploadQueue(directory)


def _flush(collector: str, console: Console) -> bool:
    """Send everything queued (this run's measurements and any a previous run left);
    whether all of it was sent. What was not is said, with where it is kept."""
    queue = _queue(upload_queue_dir())
    sent, failed = asyncio.run(queue.flush(collector))
    if not failed:
        console.print(f"uploaded {sent} to {collector}")
        return True
    kept = failed - queue.refused
    parts = []
    if kept:
        parts.append(
            f"{kept} not sent ({queue.problem or 'no answer'}), kept in {queue.pending_dir} "
            "for the next 'didban run --upload'"
        )
    if queue.refused:
        parts.append(
            f"{queue.refused} refused by the collector (moved to {queue.rejected_dir}, "
            "each with the collector's reason beside it)"
        )
    console.print(f"[red]error:[/] uploaded {sent} to {collector}; " + "; ".join(parts))
    return False


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    app.command("run")(run)
    from didban.probe.dnscheck_cli import dnscheck

    app.command("dnscheck")(dnscheck)
