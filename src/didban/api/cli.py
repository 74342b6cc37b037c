"""Commands of ``didban.api``: ``didban serve``."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import NoReturn

import typer

from didban.store.cli import DATA_DIR_OPT, LAB_OPT, open_store


def serve_cmd(
    listen: str = typer.Option("127.0.0.1:8080", "--listen", help="HOST:PORT to listen on."),
    data_dir: Path | None = DATA_DIR_OPT,
    lab: Path | None = LAB_OPT,
    max_body: int = typer.Option(
        4 * 1024 * 1024, "--max-body", help="Largest accepted request body, in bytes."
    ),
) -> None:
    """Run the API: OONI collector, measurements, aggregation, services, exports (/docs)."""
    import uvicorn

    from didban.api.app import create_app

    def fail(sentence: str) -> NoReturn:
        typer.echo(f"error: {sentence}", err=True)
        raise typer.Exit(2)

    host, sep, port_s = listen.rpartition(":")
    if not sep or not port_s.isdigit():
        fail(f"--listen must be HOST:PORT, e.g. 127.0.0.1:8080, not {listen!r}")
    if not 0 < int(port_s) < 65536:
        fail(f"--listen {listen!r}: the port must be 1-65535")
    if max_body < 1:
        fail(f"--max-body must be a positive number of bytes, not {max_body}")
    host = host.strip("[]") or "127.0.0.1"
    # can we listen there? (before announcing anything) As the server binds every address
    # of the host and skips those this machine lacks, so does this check.
    try:
        infos = socket.getaddrinfo(host, int(port_s), type=socket.SOCK_STREAM)
    except OSError as exc:
        fail(f"cannot listen on {listen}: {exc.strerror or exc}")
    bound = 0
    for family, kind, proto, _, addr in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(addr)
            bound += 1
        except OSError as exc:
            if exc.errno != errno.EADDRNOTAVAIL or len(infos) == 1:
                fail(f"cannot listen on {listen}: {exc.strerror or exc}")
    if not bound:
        fail(f"cannot listen on {listen}: no address of {host} is available here")
    shown = f"[{host}]" if ":" in host else host
    store = open_store(data_dir, lab)
    try:
        app = create_app(store, max_body=max_body)
        # uvloop and httptools (dependencies): bench/collector_load.py --baseline measures
        # them against uvicorn's pure-Python asyncio loop and h11 parser
        typer.echo(
            f"didban API on http://{shown}:{port_s}/ (docs at /docs), data in {store.dir} "
            "(uvloop + httptools)",
            err=True,
        )
        uvicorn.run(
            app,
            host=host,
            port=int(port_s),
            loop="uvloop",
            http="httptools",
            log_level="warning",
            access_log=False,
        )
    finally:
        store.close()


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    app.command("serve")(serve_cmd)
