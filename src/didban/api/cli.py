"""Serving the API: ``serve`` checks the address, opens the store and runs uvicorn
(``didban serve``, registered by ``didban.web.cli`` with the explorer's application)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from didban.store.cli import open_store

if TYPE_CHECKING:
    from fastapi import FastAPI

    from didban.store.store import Store

LISTEN_OPT = typer.Option("127.0.0.1:8080", "--listen", help="HOST:PORT to listen on.")
MAX_BODY_OPT = typer.Option(
    4 * 1024 * 1024, "--max-body", help="Largest accepted request body, in bytes."
)


def serve(
    listen: str,
    data_dir: Path | None,
    lab: Path | None,
    max_body: int,
    create_app: Callable[[Store, int], FastAPI],
    also: str = "",
) -> None:
    """Check ``listen``, open the store and run ``create_app(store, max_body)`` there
    (``didban serve``, whose application adds the explorer; ``also`` names what it adds
    in the start-up line)."""
    import uvicorn

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
        app = create_app(store, max_body)
        # uvloop and httptools (dependencies): bench/collector_load.py --baseline measures
        # them against uvicorn's pure-Python asyncio loop and h11 parser
        typer.echo(
            f"didban API on http://{shown}:{port_s}/ (docs at /docs{also}), data in {store.dir} "
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
