"""Commands of ``didban.events``: ``events detect``, ``timeline``, ``alerts``."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from didban.files.tables import print_table
from didban.store.cli import default_data_dir

if TYPE_CHECKING:
    from didban.events.detect import Result
    from didban.events.record import Event
    from didban.events.series import Filters

err = Console(stderr=True)
out = Console()
if not out.is_terminal:
    out.width = 160  # a pipe or a file: rows on one line each

events_app = typer.Typer(help="Events over time: blocks, unblocks, shutdowns, outages, NIN.")
alerts_app = typer.Typer(help="Webhook alerts for event starts and ends (signed, retried).")

FORMATS = ("ooni-aggregation", "ioda")
DATA_DIR_OPT = typer.Option(
    None,
    "--data-dir",
    help="The store's data directory (default: $DIDBAN_DATA_DIR or ./didban-data).",
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _check_output(output: Path | None) -> None:
    if output is None:
        return
    if output.suffix != ".jsonl":
        raise _fail(f"--output must end in .jsonl, not {output.name!r}")
    if not (output.parent if str(output.parent) else Path(".")).is_dir():
        raise _fail(f"the directory of --output {output} does not exist")


def _time(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    from didban.events.readers import parse_time

    try:
        return parse_time(value)
    except ValueError:
        raise _fail(f"{flag} {value!r} is not a date or an ISO 8601 time") from None


def _asns(values: list[str]) -> tuple[int, ...]:
    out: list[int] = []
    for v in values:
        for part in v.split(","):
            digits = part.strip().upper().removeprefix("AS")
            if not digits.isdigit():
                raise _fail(f"--asn {part!r} is not an AS number (AS44244 or 44244)")
            out.append(int(digits))
    return tuple(out)


def _split(values: list[str]) -> tuple[str, ...]:
    return tuple(p.strip() for v in values for p in v.split(",") if p.strip())


def _short(t: str | None) -> str | None:
    """``2026-03-09T01:00:00Z`` → ``2026-03-09 01:00``."""
    return t[:16].replace("T", " ") if t else None


def _table(events: list[Event]) -> Table:
    t = Table(title=f"{len(events)} event(s)", title_justify="left")
    for name in (
        "kind",
        "cc",
        "target",
        "ASNs",
        "method",
        "onset after … before (UTC)",
        "resolved before",
        "conf",
        "n",
        "known",
    ):
        t.add_column(name, overflow="fold")
    for e in events:
        asns = ",".join(map(str, e.asns[:4])) + (f" +{len(e.asns) - 4}" if len(e.asns) > 4 else "")
        t.add_row(
            e.kind,
            e.cc,
            e.target or "—",
            asns or "—",
            e.method or e.source,
            f"{_short(e.onset_after) or '…'} … {_short(e.onset_before)}",
            _short(e.resolved_before) or "ongoing",
            f"{e.confidence:.2f}",
            str(e.n_measurements),
            e.known_event or "",
        )
    return t


def detect_cmd(
    since: str | None = typer.Option(None, "--since", help="Start (date or ISO time, UTC)."),
    until: str | None = typer.Option(None, "--until", help="End, exclusive."),
    cc: list[str] = typer.Option([], "--cc", help="Country code(s); repeat or comma-separate."),
    asn: list[str] = typer.Option([], "--asn", help="Network(s): AS44244 or 44244."),
    target: list[str] = typer.Option([], "--target", help="Service id(s) or domain(s)."),
    bucket: str = typer.Option("1h", "--bucket", help="Grid step: 1h (default), 1d, 1m, 10m…"),
    input_file: Path | None = typer.Option(None, "--input", help="Read a file, not the store."),
    fmt: str | None = typer.Option(None, "--format", help="ooni-aggregation or ioda."),
    output: Path | None = typer.Option(None, "--output", help="Write the events (JSONL)."),
    data_dir: Path | None = DATA_DIR_OPT,
    dns_by_resolver: bool = typer.Option(
        False, "--dns-by-resolver", help="Split series by resolver kind (ISP vs other)."
    ),
    method: str = typer.Option("cusum", "--method", help="cusum (default), window or ooni."),
    min_confidence: float = typer.Option(
        0.5, "--min-confidence", help="Drop weaker events (suspected artefacts stay)."
    ),
    notify: bool = typer.Option(
        False, "--notify", help="Deliver the alerts of the subscriptions now."
    ),
    save: bool | None = typer.Option(
        None,
        "--save/--no-save",
        help="Keep the events in the data directory for the API, feeds and alerts "
        "(default: for runs over the store not narrowed by --cc, --asn or --target).",
    ),
) -> None:
    """Find events in the store's verdicts, or in an OONI aggregation or IODA export."""
    from didban.events import detect as detectmod
    from didban.events.grid import parse_bucket
    from didban.events.methods import METHODS
    from didban.events.readers import InputError
    from didban.events.record import write_jsonl
    from didban.events.series import Filters, SourceError, VerdictSource

    try:
        step = parse_bucket(bucket)
    except ValueError as exc:
        raise _fail(f"--bucket: {exc}") from None
    if method not in METHODS:
        raise _fail(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    _check_output(output)
    if fmt is not None and fmt not in FORMATS:
        raise _fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt is not None and input_file is None:
        raise _fail("--format needs --input FILE")
    if input_file is not None and fmt is None:
        raise _fail("--input needs --format ooni-aggregation or --format ioda")
    t_since, t_until = _time(since, "--since"), _time(until, "--until")
    if t_since and t_until and t_until <= t_since:
        raise _fail("--until must be later than --since")
    ccs = tuple(c.upper() for c in _split(cc))
    filters = Filters(ccs, _asns(asn), _split(target), t_since, t_until)
    narrowed = bool(filters.cc or filters.asn or filters.target)
    if save and narrowed and input_file is None:
        raise _fail(
            "--save needs a run over the whole store: --cc, --asn and --target see part of "
            "an event (a national block spans networks, an artefact countries)"
        )
    defaulted = save is None
    if save is None:
        save = input_file is None and not narrowed
    if not 0.0 <= min_confidence <= 1.0:
        raise _fail(f"--min-confidence must be between 0 and 1, not {min_confidence}")
    settings = detectmod.Settings(
        step=step, by_resolver=dns_by_resolver, method=method, min_confidence=min_confidence
    )
    started = time.perf_counter()
    try:
        with err.status("detecting events…") as status:

            def progress(stage: str) -> None:
                status.update(stage + "…")

            if input_file is not None and fmt == "ioda":
                if len(ccs) > 1:
                    raise _fail("an IODA export is one entity: give one --cc")
                result = detectmod.detect_ioda(
                    input_file,
                    ccs[0] if ccs else "ZZ",
                    filters.asn[0] if filters.asn else None,
                    settings,
                )
            elif input_file is not None:
                result = detectmod.detect_ooni(
                    input_file,
                    ccs[0] if len(ccs) == 1 else None,
                    settings,
                    step if bucket != "1h" else None,
                )
            else:
                src = VerdictSource.store(data_dir or default_data_dir())
                result = detectmod.detect_store(src, filters, settings, progress)
    except (InputError, SourceError) as exc:
        raise _fail(str(exc)) from None
    events = (
        detectmod.select(result.events, Filters(ccs, filters.asn, filters.target, t_since))
        if input_file is not None
        else result.events
    )
    if output is not None:
        write_jsonl(output, events)
    print_table(out, _table(events))
    _summary(result, time.perf_counter() - started, output)
    where = data_dir or default_data_dir()
    queued = _save(where, events, filters, input_file is None and not narrowed) if save else None
    if defaulted and not save and input_file is None:
        err.print("not saved (a run narrowed by --cc, --asn or --target sees part of an event)")
    if notify:
        _notify(where, events, queued)


def _save(data_dir: Path, events: list[Event], filters: Filters, whole: bool) -> int:
    """Save the events (``saved.publish``); returns how many alerts were queued."""
    from didban.events.detect import SOURCE
    from didban.events.saved import FILE_NAME, Coverage, publish

    complete = whole and filters.since is None and filters.until is None
    sources = {e.source for e in events}
    source = SOURCE if whole else (sources.pop() if len(sources) == 1 else "file")
    done = publish(data_dir, events, Coverage(source, filters.since, filters.until, complete))
    c = done.changes
    err.print(
        f"saved in {data_dir / FILE_NAME}: {c.added} new, {c.changed} changed, "
        f"{c.unchanged} unchanged, {c.retracted} retracted; "
        f"{done.transitions} start(s)/end(s) new, {done.queued} alert(s) queued"
    )
    return done.queued


def _summary(result: Result, seconds: float, output: Path | None) -> None:
    where = f"; written to {output}" if output else ""
    err.print(
        f"{len(result.events)} event(s) from {result.n_findings:,} finding(s) in "
        f"{result.n_series:,} series × {result.n_buckets:,} buckets "
        f"({result.n_verdicts:,} verdicts) in {seconds:.1f} s{where}"
    )


def _notify(data_dir: Path, events: list[Event], queued: int | None) -> None:
    """Deliver the due alerts; a run that saved nothing queues its events first."""
    from didban.events.alerts import Outbox

    with Outbox(data_dir) as box:
        added = box.enqueue(events) if queued is None else queued
        delivered, failed = box.deliver()
        pending = len(box.pending())
    err.print(f"alerts: {added} queued, {delivered} delivered, {failed} failed, {pending} pending")


def timeline_cmd(
    cc: str = typer.Option(..., "--cc", help="Country code, e.g. IR."),
    target: str | None = typer.Option(None, "--target", help="A service id or domain."),
    since: str | None = typer.Option(None, "--since", help="Start (date or ISO time, UTC)."),
    until: str | None = typer.Option(None, "--until", help="End, exclusive."),
    events_file: Path | None = typer.Option(
        None, "--events", help="Detected events from this JSONL file (default: the store)."
    ),
    output: Path | None = typer.Option(None, "--output", help="Write the timeline (JSONL)."),
    data_dir: Path | None = DATA_DIR_OPT,
    width: int = typer.Option(110, "--width", help="Characters per line."),
) -> None:
    """Known and detected events of one country on one axis."""
    import orjson

    from didban.events import known as knownmod
    from didban.events import timeline
    from didban.events.detect import Settings, detect_store, select
    from didban.events.record import EventFileError, read_jsonl, write_lines
    from didban.events.series import Filters, SourceError, VerdictSource

    code = cc.upper()
    if len(code) != 2 or not code.isalpha():
        raise _fail(f"--cc must be a two-letter country code, not {cc!r}")
    _check_output(output)
    t_since, t_until = _time(since, "--since"), _time(until, "--until")
    detected: list[Event] = []
    if events_file is not None:
        try:
            detected = list(read_jsonl(events_file))
        except EventFileError as exc:
            raise _fail(str(exc)) from None
    else:
        where = data_dir or default_data_dir()
        if data_dir is not None or where.is_dir():
            targets = (target,) if target else ()
            try:
                with err.status("detecting events in the store…"):
                    detected = detect_store(
                        VerdictSource.store(where),
                        Filters((code,), (), targets, t_since, t_until),
                        Settings(),
                    ).events
            except SourceError as exc:
                raise _fail(str(exc)) from None
    detected = select(detected, Filters((code,), (), (target,) if target else (), t_since, t_until))
    known = knownmod.select(knownmod.load(), code, target, t_since, t_until)
    items = timeline.entries(known, detected)
    for line in timeline.render(items, t_since, t_until, width):
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    err.print(f"{len(known)} known and {len(detected)} detected event(s) for {code}")
    if output is not None:
        write_lines(output, (orjson.dumps(it.row()) for it in items))


def add_cmd(
    url: str = typer.Argument(..., help="Where to POST (http:// or https://)."),
    cc: str | None = typer.Option(None, "--cc", help="Only events of this country."),
    target: str | None = typer.Option(None, "--target", help="Only events of this target."),
    kind: str | None = typer.Option(None, "--kind", help="Only this kind (block, shutdown…)."),
    data_dir: Path | None = DATA_DIR_OPT,
) -> None:
    """Subscribe a URL; prints its id and the secret that signs its requests (shown once)."""
    from didban.events.alerts import AlertError, Outbox

    try:
        with Outbox(data_dir or default_data_dir()) as box:
            sub = box.add(url, cc, target, kind)
    except AlertError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"subscription {sub.id}\nsecret {sub.secret}")


def _existing(data_dir: Path | None) -> Path:
    """The data directory of a command that only reads or changes subscriptions: one that
    does not exist is a mistyped path, not a place to create the alerts file in."""
    where = data_dir or default_data_dir()
    if not where.is_dir():
        raise _fail(f"there is no data directory {where} (see --data-dir)")
    return where


def list_cmd(data_dir: Path | None = DATA_DIR_OPT) -> None:
    """The subscriptions, with their pending deliveries."""
    from didban.events.alerts import Outbox

    with Outbox(_existing(data_dir)) as box:
        subs = box.subscriptions()
        pending = box.pending()
    t = Table(title=f"{len(subs)} subscription(s)", title_justify="left")
    for name in ("id", "url", "cc", "target", "kind", "pending", "last error"):
        t.add_column(name)
    for s in subs:
        mine = [p for p in pending if p.subscription == s.id]
        last = next((p.last_error for p in reversed(mine) if p.last_error), "")
        t.add_row(s.id, s.url, s.cc or "*", s.target or "*", s.kind or "*", str(len(mine)), last)
    print_table(out, t)


def remove_cmd(
    sub_id: str = typer.Argument(..., metavar="ID"), data_dir: Path | None = DATA_DIR_OPT
) -> None:
    """Remove a subscription and its undelivered alerts."""
    from didban.events.alerts import AlertError, Outbox

    try:
        with Outbox(_existing(data_dir)) as box:
            box.remove(sub_id)
    except AlertError as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(f"removed {sub_id}")


def deliver_cmd(
    wait: float = typer.Option(0.0, "--wait", help="Keep retrying for up to this many seconds."),
    now: bool = typer.Option(False, "--now", help="Retry every pending alert now."),
    data_dir: Path | None = DATA_DIR_OPT,
) -> None:
    """Deliver the pending alerts (exit 1 if some are still pending)."""
    from didban.events.alerts import Outbox

    with Outbox(_existing(data_dir)) as box:
        delivered, failed = box.deliver(due_only=not now)
        left = box.drain(time.time() + wait) if wait > 0 else len(box.pending())
    err.print(f"alerts: {delivered} delivered, {failed} failed, {left} pending")
    if left:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    events_app.command("detect")(detect_cmd)
    alerts_app.command("add")(add_cmd)
    alerts_app.command("list")(list_cmd)
    alerts_app.command("remove")(remove_cmd)
    alerts_app.command("deliver")(deliver_cmd)
    app.add_typer(events_app, name="events")
    app.add_typer(alerts_app, name="alerts")
    app.command("timeline")(timeline_cmd)
