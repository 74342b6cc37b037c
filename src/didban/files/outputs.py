"""Where a command writes a file: refusing a path that would destroy one of its inputs, and
writing whole (a temporary file beside the target, renamed into place once complete, so
an interrupted command never leaves half a file)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def output_problem(output: Path, inputs: list[Path], suffixes: tuple[str, ...]) -> str | None:
    """Why ``output`` cannot be written as a command's output (one sentence naming it as
    ``--output``), or None: a wrong suffix, a directory, a missing parent directory, one of
    the ``inputs``, or a place inside an input directory."""
    if output.suffix.lower() not in suffixes:
        return f"--output must end in {' or '.join(suffixes)}, not {output.name!r}"
    if output.is_dir():
        return f"--output {output} is a directory; give a file name"
    if not output.parent.is_dir():
        return f"the directory of --output, {output.parent}, does not exist"
    target = output.resolve()
    for p in inputs:
        if p.is_dir() and target.is_relative_to(p.resolve()):
            # it would replace a measurement file there, or be read as input next time
            return f"--output {output} is inside the input directory {p}; write it elsewhere"
        try:
            same = output.exists() and p.is_file() and p.samefile(output)
        except OSError:
            same = False
        if same:
            return f"--output {output} is one of the inputs; it would be overwritten"
    return None


def tmp_beside(target: Path) -> Path:
    """A new empty temporary file in ``target``'s directory (renamed onto ``target`` once
    written), with the mode any new file would get."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    # mkstemp creates the file 0600; give the output the mode any new file would get.
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    os.close(fd)
    return Path(name)


def write_text_whole(target: Path, text: str) -> None:
    """``text`` written to ``target`` whole or not at all. Raises ``OSError``."""
    tmp = tmp_beside(target)
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
