"""Tables printed by the commands: drawn on a terminal, plain tab-separated rows in a pipe."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from didban.cli import app
from didban.files.tables import print_table

LONG = "a-service-name-much-longer-than-a-column-of-an-eighty-column-terminal.example.org"


def _table() -> Table:
    t = Table(title="2 [b]things[/b]", caption="a caption")
    t.add_column("name", overflow="fold")
    t.add_column("state")
    t.add_row(LONG, "[red]blocked[/red]")
    t.add_row("two\tcells\nin one", "ok")
    return t


def test_a_table_in_a_pipe_is_one_line_per_row_with_tabs_between_cells() -> None:
    out = io.StringIO()
    print_table(Console(file=out, width=80), _table())
    assert out.getvalue().splitlines() == [
        "# 2 things",
        "name\tstate",
        f"{LONG}\tblocked",
        "two cells in one\tok",
        "# a caption",
    ]


def test_a_table_on_a_terminal_is_drawn() -> None:
    out = io.StringIO()
    print_table(Console(file=out, width=80, force_terminal=True), _table())
    assert "┃" in out.getvalue() and "\t" not in out.getvalue()


def test_the_summary_of_analyze_in_a_pipe_is_plain_rows(ooni_fixtures: Path) -> None:
    src = ooni_fixtures / "backend_fastpath" / "web_connectivity_ir_fp.json"
    r = CliRunner().invoke(app, ["analyze", str(src)], env={"COLUMNS": "40"})
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[:3] == [
        "# 1 measurement classified",
        "service\tcc\tstate\tmethod\tcount\tconfirmed",
        "facebook\tIR\tblocked\tdns.hijack\t1\t1",
    ]
