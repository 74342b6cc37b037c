"""The ``didban`` command: wires each layer's commands into one typer application.

Each package that offers commands exposes ``register(app)`` in its own ``cli`` module;
this file only assembles them, so a layer's CLI lives next to the code it drives.
"""

from __future__ import annotations

import sys

import typer

from didban import __version__
from didban.net import guard

app = typer.Typer(
    name="didban",
    help="didban: measure, prove and document internet censorship and shutdowns.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"didban {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_version, is_eager=True
    ),
) -> None:
    """didban: measure, prove and document internet censorship and shutdowns."""


def _assemble() -> None:
    from didban.analysis import cli as analysis_cli
    from didban.api import cli as api_cli
    from didban.control import cli as control_cli
    from didban.demo import register as register_demo
    from didban.lab import cli as lab_cli
    from didban.probe import cli as probe_cli
    from didban.store import cli as store_cli

    for module in (lab_cli, probe_cli, control_cli, analysis_cli, store_cli, api_cli):
        module.register(app)
    register_demo(app)


_assemble()


def main() -> None:
    guard.install_if_enabled()
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
