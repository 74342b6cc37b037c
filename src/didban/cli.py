"""The ``didban`` command: wires each layer's commands into one typer application.

Each package that offers commands exposes ``register(app)`` in its own ``cli`` module;
this file only assembles them, so a layer's CLI lives next to the code it drives.
"""

from __future__ import annotations

import sys
from typing import Any, Final

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from didban import __version__
from didban.net import guard

# typer labels a value by its Python type (``--output <path>``, ``PATH <list[Path]>``,
# ``{DOMAIN}...``); the help says what to type instead, as Unix tools do.
_LABELS: Final = {
    "str": "TEXT",
    "path": "PATH",
    "int": "INTEGER",
    "int range": "INTEGER",
    "float": "NUMBER",
    "float range": "NUMBER",
}


class _ReadableOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.metavar is not None:
            return self.metavar
        shown = self.display_type(ctx).strip("<>")
        if shown.startswith("list[") and shown.endswith("]"):  # repeatable: one value each
            shown = shown[5:-1]
        return _LABELS.get(shown.lower(), shown)


class _ReadableArgument(TyperArgument):
    def _readable(self) -> str:
        name = (self.metavar or self.name or "").upper()
        return f"{name}..." if self.nargs != 1 else name

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        return [self._readable() if self.required else f"[{self._readable()}]"]

    def get_help_record(self, ctx: Any) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        return None if record is None else (self._readable(), record[1])


class _ReadableGroup(TyperGroup):
    """The ``didban`` group: every option and argument of every command below it gets a
    readable label (``FILE``, ``DOMAIN...``). typer offers no hook for the classes of its
    parameters, so the built ones are given these subclasses, which only change help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stack: list[Any] = [self]
        while stack:
            command = stack.pop()
            stack.extend((getattr(command, "commands", None) or {}).values())
            for param in command.params:
                if type(param) is TyperOption:
                    param.__class__ = _ReadableOption
                elif type(param) is TyperArgument:
                    param.__class__ = _ReadableArgument


app = typer.Typer(
    name="didban",
    help="didban: measure, prove and document internet censorship and shutdowns.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=_ReadableGroup,
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


# Which package offers each top-level command. Running one command imports only the
# package that owns it (start-up stays fast: the lab starts several didban processes);
# ``didban --help`` and anything unknown assemble every package.
_OWNERS: dict[str, str] = {
    "lab": "didban.lab.cli",
    "run": "didban.probe.cli",
    "dnscheck": "didban.probe.cli",
    "control": "didban.control.cli",
    "analyze": "didban.analysis.cli",
    "report": "didban.web.cli",
    "ingest": "didban.store.cli",
    "store": "didban.store.cli",
    "data": "didban.store.cli",
    "ooni": "didban.store.oonisync.cli",
    "serve": "didban.web.cli",  # the API and the explorer (didban.api.cli.serve)
    "events": "didban.events.cli",
    "timeline": "didban.events.cli",
    "alerts": "didban.events.cli",
    "scale": "didban.scale.cli",
    "demo": "didban.demo",
}


def _command_word(argv: list[str]) -> str | None:
    for arg in argv[1:]:
        if not arg.startswith("-"):
            return arg
    return None


def _assemble(argv: list[str] | None = None) -> None:
    import importlib

    word = _command_word(sys.argv if argv is None else argv)
    wanted = [_OWNERS[word]] if word in _OWNERS else list(dict.fromkeys(_OWNERS.values()))
    for name in wanted:
        importlib.import_module(name).register(app)


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
