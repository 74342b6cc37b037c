"""Commands of ``didban.control``; ``register(app)`` adds them to the ``didban`` command."""

from __future__ import annotations

import ipaddress
from typing import NoReturn

import typer

control_app = typer.Typer(
    name="control",
    help="The test helper (OONI oohelperd-compatible): serve it or query it.",
    no_args_is_help=True,
)


def _ca_problem(path: str) -> str | None:
    from didban.net.verify import ca_file_problem

    return ca_file_problem(path)


def _fail(message: str) -> NoReturn:
    typer.echo(f"didban control: {message}", err=True)
    raise typer.Exit(2)


def _endpoint(text: str, what: str, default_port: int | None = None) -> tuple[str, int]:
    from didban.net.stream import split_address

    try:
        host, port = split_address(text, default_port if default_port is not None else -1)
        ipaddress.ip_address(host)
    except ValueError:
        _fail(f"{what} must be IP:PORT, not {text!r}")
    if not 0 <= port < 65536:
        _fail(f"{what} must be IP:PORT with a port number, not {text!r}")
    return host, port


@control_app.command("serve")
def serve(
    listen: str = typer.Option(
        ..., "--listen", metavar="IP:PORT", help="Address to listen on, IP:PORT."
    ),
    resolver: str | None = typer.Option(
        None,
        "--resolver",
        metavar="IP[:PORT]",
        help="UDP DNS resolver (default: the system resolver).",
    ),
    ca_file: str | None = typer.Option(
        None,
        "--ca-file",
        metavar="FILE",
        help="PEM bundle of trusted roots (default: the system roots).",
    ),
    asn_map: str | None = typer.Option(
        None,
        "--asn-map",
        metavar="FILE",
        help="A JSON file holding a list of [cidr, asn, cc, org] rows, for ip_info.asn "
        "(default: the shipped IP→ASN snapshot).",
    ),
    allow_loopback: bool = typer.Option(
        False,
        "--allow-loopback",
        help="Also measure loopback endpoints (implied when listening on loopback).",
    ),
) -> None:
    """Serve the test helper: GET / says hello, POST / measures a THRequest."""
    import asyncio

    from didban.control.helper import HelperConfig, load_asn_map
    from didban.control.server import serve_forever
    from didban.net import guard

    host, port = _endpoint(listen, "--listen")
    if resolver is not None:
        r_host, r_port = _endpoint(resolver, "--resolver", 53)
        resolver = f"[{r_host}]:{r_port}" if ":" in r_host else f"{r_host}:{r_port}"
    if ca_file is not None and (problem := _ca_problem(ca_file)):
        _fail(problem)
    rows = []
    if asn_map is not None:
        try:
            rows = load_asn_map(asn_map)
        except ValueError as exc:
            _fail(str(exc))
    guard.install_if_enabled()
    # A helper listening on loopback serves only this machine's users, who can reach
    # loopback anyway: let it measure loopback endpoints (local tests and development).
    local = ipaddress.ip_address(host).is_loopback
    cfg = HelperConfig(
        resolver=resolver, ca_file=ca_file, asn_map=rows, allow_loopback=allow_loopback or local
    )
    bound = ipaddress.ip_address(host)
    if not rows and (bound.is_unspecified or bound.is_global):
        # a public helper will look public addresses up: load the offline snapshot now, in
        # the background, rather than in the event loop on the first request (~0.4 s)
        import threading

        from didban.data import ipasn

        threading.Thread(target=ipasn.default_db, name="asn-snapshot", daemon=True).start()
    try:
        asyncio.run(serve_forever(host, port, cfg))
    except OSError as exc:
        _fail(f"cannot listen on {listen}: {exc.strerror or exc}")


@control_app.command("query")
def query_cmd(
    url: str = typer.Argument(..., metavar="URL", help="The URL to ask the helper about."),
    helper: str = typer.Option(
        ..., "--helper", metavar="URL", help="The helper's URL, e.g. http://IP:PORT/"
    ),
    endpoint: list[str] = typer.Option(
        [],
        "--endpoint",
        metavar="IP:PORT",
        help="An address the probe would connect to (repeatable).",
    ),
    ca_file: str | None = typer.Option(
        None, "--ca-file", metavar="FILE", help="CA bundle for https helpers."
    ),
    timeout: float = typer.Option(
        30.0, "--timeout", metavar="SECONDS", help="Seconds to wait for the answer."
    ),
) -> None:
    """Ask a test helper about URL and print its JSON answer."""
    import asyncio

    import msgspec

    from didban.control.client import query_with_status
    from didban.control.helper import BadRequest, check_request
    from didban.model import failures
    from didban.model.ooni import THRequest
    from didban.net import guard
    from didban.net.httpwire import DEFAULT_HEADERS

    guard.install_if_enabled()
    req = THRequest(
        http_request=url,
        tcp_connect=list(endpoint),
        http_request_headers={k: [v] for k, v in DEFAULT_HEADERS},
    )
    # what a helper would refuse with a 400 is refused here, with the helper's own reason
    try:
        check_request(req, url_name="the URL", endpoint_name="--endpoint")
    except BadRequest as exc:
        _fail(str(exc))
    if not timeout > 0:
        _fail(f"--timeout must be a positive number of seconds, not {timeout}")
    if ca_file is not None and (problem := _ca_problem(ca_file)):
        _fail(problem)
    res, status = asyncio.run(query_with_status(helper, req, timeout, ca_file=ca_file))
    if isinstance(res, str):
        if status is not None and res == failures.HTTP_UNEXPECTED_STATUS_CODE:
            _fail(
                f"{helper} answered HTTP {status}, not a test helper's answer "
                "(is --helper the URL of a test helper?)"
            )
        if status is not None:
            _fail(
                f"{helper} answered HTTP {status}, but not with a test helper's JSON "
                "(is --helper the URL of a test helper?)"
            )
        _fail(f"the helper {helper} did not answer: {res}")
    typer.echo(msgspec.json.format(msgspec.json.encode(res)).decode())


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    app.add_typer(control_app, name="control")
