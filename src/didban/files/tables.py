"""The tables the commands print: drawn on a terminal, plain rows anywhere else.

On a terminal a rich ``Table`` is drawn as it is (boxes, wrapping to the window). Written to
a pipe or a file it would be wrapped at 80 columns, a cell split over several lines; there
it is printed as tab-separated rows instead — the header row, then one line per row, each
cell's text with its markup removed and any tab or line break made a space — with the
title before and the caption after as ``# `` lines, so ``grep``, ``cut -f`` and
spreadsheets read it.
"""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text


def _plain(cell: RenderableType | None) -> str:
    if cell is None:
        return ""
    if isinstance(cell, Text):
        text = cell.plain
    elif isinstance(cell, str):
        text = Text.from_markup(cell).plain
    else:
        text = str(cell)
    return " ".join(text.split())


def plain_rows(table: Table) -> list[str]:
    """The lines ``print_table`` writes when the output is not a terminal."""
    lines = []
    if table.title:
        lines.append("# " + _plain(table.title))
    columns = table.columns
    if table.show_header:
        lines.append("\t".join(_plain(c.header) for c in columns))
    cells = [list(c.cells) for c in columns]
    for i in range(table.row_count):
        lines.append("\t".join(_plain(col[i]) if i < len(col) else "" for col in cells))
    if table.caption:
        lines.append("# " + _plain(table.caption))
    return lines


def print_table(console: Console, table: Table) -> None:
    """``table`` on ``console``: drawn on a terminal, else as plain tab-separated rows."""
    if console.is_terminal:
        console.print(table)
        return
    # written as they are: rich would expand the tabs into spaces
    console.file.write("".join(line + "\n" for line in plain_rows(table)))
    console.file.flush()
