"""Commands of ``didban.lab``; ``register(app)`` adds the ``didban lab ...`` sub-commands:
``up``, ``status``, ``exec``, ``switch``, ``down`` and ``scenario``. Every failure is one
sentence on stderr and a non-zero exit."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import typer

from didban.lab import plan

lab_app = typer.Typer(
    name="lab",
    help="The censorship lab: an emulated Iranian censor in network namespaces.",
    no_args_is_help=True,
)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"didban lab: {message}", err=True)
    raise typer.Exit(code)


def _live_current() -> Path | None:
    from didban.lab import runtime

    sd = runtime.current()
    return sd if sd is not None and runtime.lab_exists(sd) else None


def _need_root() -> None:
    from didban.lab import runtime

    try:
        runtime.preflight()
    except runtime.LabError as exc:
        _fail(str(exc))


def _valid_profile_as_root(profile: str) -> None:
    """Refuse an invalid profile first (it needs no root to say so), then a non-root user."""
    from didban.lab import runtime

    try:
        runtime.load_profile(profile)
    except runtime.LabError as exc:
        _fail(str(exc))
    _need_root()


@lab_app.command("up")
def up_cmd(
    profile: str = typer.Option(
        "clean",
        "--profile",
        "-p",
        metavar="PROFILE",
        help="A shipped profile (clean, iran-2019-shutdown, iran-2022, iran-protocol-filter, "
        "iran-strict-dpi, isp-dns-redirects, national-root-mitm; docs/lab-profiles.md) or the "
        "path of a YAML profile.",
    ),
    no_control: bool = typer.Option(
        False, "--no-control", help="Do not start the control test helper."
    ),
) -> None:
    """Build a lab censored as --profile says, and start its services, resolvers, censor
    and control."""
    from didban.lab import runtime

    _valid_profile_as_root(profile)
    live = _live_current()
    if live is not None:
        _fail(f"a lab is already up ({live.name}); run 'didban lab down' first")
    t0 = time.monotonic()

    def stop(_signum: int, _frame: object) -> None:  # unwind: runtime.up removes what it built
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        desc = runtime.up(profile, control=not no_control)
    except runtime.LabError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted; the half-built lab was removed", 130)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    took = time.monotonic() - t0
    typer.echo(f"lab {desc.prefix} up with profile '{desc.profile}' in {took:.2f} s")
    for role, ns in desc.namespaces.items():
        typer.echo(f"  {role:<9} {ns}")
    typer.echo(f"  state     {desc.state_dir}  (descriptor {plan.CURRENT_LINK})")
    typer.echo(f"  CA        {desc.ca_file}")
    typer.echo("run a tool inside it: didban lab exec -- curl -sS https://www.instagram.com/")


@lab_app.command("status")
def status_cmd() -> None:
    """Show the current lab: profile, namespaces, processes and rules fired so far."""
    from didban.lab import runtime

    _need_root()
    try:
        st = runtime.status()
    except runtime.LabError as exc:
        _fail(str(exc))
    typer.echo(f"lab {st['prefix']}  profile '{st['profile']}'  created {st['created']}")
    namespaces = st["namespaces"]
    assert isinstance(namespaces, dict)
    for role, (ns, present) in namespaces.items():
        typer.echo(f"  netns {role:<9} {ns:<18} {'present' if present else 'MISSING'}")
    processes = st["processes"]
    assert isinstance(processes, dict)
    for name, (pid, alive) in processes.items():
        typer.echo(f"  proc  {name:<18} pid {pid:<8} {'alive' if alive else 'DEAD'}")
    fired = st["fired"]
    assert isinstance(fired, dict)
    total = sum(fired.values())
    typer.echo(f"  rules fired: {total}" + ("" if total else " (none)"))
    for rule, count in sorted(fired.items(), key=lambda kv: -kv[1]):
        typer.echo(f"    {rule:<40} {count}")


@lab_app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def exec_cmd(
    ctx: typer.Context,
    role: str = typer.Option("client", "--ns", help=f"Namespace role: {', '.join(plan.ROLES)}."),
) -> None:
    """Run a command inside the lab (client namespace by default): didban lab exec -- CMD...

    The lab CA is trusted through SSL_CERT_FILE, CURL_CA_BUNDLE and REQUESTS_CA_BUNDLE and
    the ISP resolver is the system resolver. The exit code is the command's."""
    from didban.lab import runtime

    argv = list(ctx.args)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        _fail("nothing to run: didban lab exec -- CMD [ARGS...]", 2)
    if role not in plan.ROLES:
        _fail(f"unknown namespace role '{role}' (one of: {', '.join(plan.ROLES)})", 2)
    _need_root()
    sd = _live_current()
    if sd is None:
        _fail("no lab is up (start one with: didban lab up --profile clean)")
    desc = runtime.read_descriptor(sd)
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        _fail(f"command not found: {argv[0]}", 127)
    env = {
        **os.environ,
        "SSL_CERT_FILE": desc.ca_file,
        "CURL_CA_BUNDLE": desc.ca_file,
        "REQUESTS_CA_BUNDLE": desc.ca_file,
        "DIDBAN_LAB": str(sd / "lab.json"),
    }
    cmd = ["ip", "netns", "exec", desc.namespaces[role], *argv]
    try:
        code = subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(128 - code if code < 0 else code)  # killed by signal N: 128 + N, as sh


@lab_app.command("circumvention")
def circumvention_cmd() -> None:
    """Start the circumvention tools' servers in the running lab (a private Tor network
    with an obfs4 bridge, Snowflake, OpenVPN, WireGuard, Shadowsocks, HTTP and SOCKS5
    proxies); returns once Tor has a consensus (15-30 s after a cold start). The lab of
    $DIDBAN_LAB (its lab.json), else the current one; a second call returns at once."""
    from didban.lab import runtime
    from didban.lab.circumvention import start

    _need_root()
    target = os.environ.get("DIDBAN_LAB")
    sd = Path(target).parent if target else _live_current()
    if sd is None or not runtime.lab_exists(sd):
        _fail("no lab is up (start one with: didban lab up --profile clean)")
    t0 = time.monotonic()
    try:
        circ = start.up(sd)
    except runtime.LabError as exc:
        _fail(str(exc))
    typer.echo(f"circumvention servers of lab {sd.name} ready in {time.monotonic() - t0:.1f} s")
    for relay in circ.tor.relays:
        typer.echo(f"  tor {relay.role:<9} {relay.address}:{relay.or_port}  {relay.fingerprint}")
    typer.echo(f"  obfs4 bridge  {circ.tor.obfs4_bridge}")
    typer.echo(f"  snowflake     broker {circ.snowflake.broker_url} (front {circ.snowflake.front})")
    for url in circ.openvpn.inputs:
        typer.echo(f"  openvpn       {url}")
    typer.echo(f"  wireguard     {circ.wireguard.input}")
    typer.echo(
        f"  shadowsocks   {circ.shadowsocks.address}:{circ.shadowsocks.port} "
        f"({circ.shadowsocks.method})"
    )
    typer.echo(f"  http proxy    {circ.http_connect}")
    typer.echo(f"  socks5 proxy  {circ.socks5}")


@lab_app.command("switch")
def switch_cmd(
    profile: str = typer.Option(
        ..., "--profile", "-p", metavar="PROFILE", help="Shipped profile or YAML path."
    ),
) -> None:
    """Change the running lab's censorship profile live (the censor reloads on SIGHUP)."""
    from didban.lab import runtime

    _valid_profile_as_root(profile)
    if _live_current() is None:
        _fail("no lab is up (start one with: didban lab up --profile clean)")
    try:
        name = runtime.switch(profile)
    except runtime.LabError as exc:
        _fail(str(exc))
    typer.echo(f"profile switched to '{name}'")


@lab_app.command("down")
def down_cmd(
    all_labs: bool = typer.Option(
        False, "--all", help=f"Remove every lab recorded under {plan.RUN_DIR}."
    ),
) -> None:
    """Remove the current lab: processes, namespaces, /etc/netns entries, state."""
    from didban.lab import runtime

    _need_root()
    try:
        if all_labs:
            removed = runtime.down_all()
            typer.echo(
                f"removed {len(removed)} lab(s)" + (f": {', '.join(removed)}" if removed else "")
            )
            return
        sd = runtime.current()
        if sd is None:
            _fail("no lab is up (nothing to remove; 'didban lab down --all' sweeps every lab)")
        deleted = runtime.down(sd)
    except runtime.LabError as exc:
        _fail(str(exc))
    typer.echo(f"lab {sd.name} removed ({len(deleted)} namespaces deleted)")


@lab_app.command("scenario")
def scenario_cmd(
    file: Path = typer.Argument(..., help="The scenario (YAML; docs/lab.md 'Scenarios')."),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Directory for the log and the ground truth "
        "(default: ./scenario-<name>); must not hold a run already.",
    ),
    probe_cmd: str | None = typer.Option(
        None,
        "--probe-cmd",
        help="A command to measure with during the scenario "
        "(shell words; {dir} and {round} are replaced), e.g. "
        "'didban run --lab --output {dir}/round-{round}.jsonl'.",
    ),
    every: str | None = typer.Option(
        None,
        "--every",
        help="Run --probe-cmd once per round of this duration (30s, 1m); "
        "without it, it runs once for the whole scenario.",
    ),
    no_control: bool = typer.Option(
        False, "--no-control", help="Do not start the control test helper."
    ),
    new_lab: bool = typer.Option(
        False,
        "--new-lab",
        help="Bring up a lab of its own even when one is up (not made the current lab).",
    ),
) -> None:
    """Switch profiles at the scenario's offsets; write its ground-truth timeline."""
    import shlex

    from didban.lab import runtime, scenario_run
    from didban.lab import scenario as scenariomod

    try:
        scenario = scenariomod.load(file)
    except scenariomod.ScenarioError as exc:
        _fail(str(exc), 2)
    hook = None
    if every is not None and probe_cmd is None:
        _fail("--every needs --probe-cmd", 2)
    if probe_cmd is not None:
        try:
            argv = tuple(shlex.split(probe_cmd))
        except ValueError as exc:
            _fail(f"--probe-cmd is not a command line: {exc}", 2)
        if not argv:
            _fail("--probe-cmd is empty", 2)
        seconds = None
        if every is not None:
            try:
                seconds = scenariomod.parse_duration(every)
            except ValueError as exc:
                _fail(f"--every: {exc}", 2)
            if seconds <= 0:
                _fail("--every must be longer than 0 s", 2)
        hook = scenario_run.ProbeHook(argv, seconds)
    out_dir = output or Path(f"scenario-{scenario.name}")
    if (out_dir / scenario_run.TIMELINE).exists():
        _fail(f"{out_dir} already holds a scenario run; choose another --output", 2)
    if out_dir.exists() and not out_dir.is_dir():
        _fail(f"--output {out_dir} is not a directory", 2)
    _need_root()

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        done = scenario_run.run(
            scenario,
            out_dir,
            probe=hook,
            control=not no_control,
            echo=typer.echo,
            new_lab=new_lab,
        )
    except runtime.LabError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail(f"interrupted; the timeline so far is in {out_dir / scenario_run.TIMELINE}", 130)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    rounds = f", {done.rounds} probe round(s)" if hook else ""
    typer.echo(
        f"scenario '{scenario.name}' done: {done.switches} switch(es){rounds}; "
        f"ground truth in {out_dir / scenario_run.TIMELINE}"
    )


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    app.add_typer(lab_app, name="lab")
