"""Helpers the probe's commands share: one-sentence errors, the consent prompt, the output
target check and the argument rewriting of the ``--lab`` re-exec."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import typer

AROUND_NOTE = (
    "note: this runs in the lab's client namespace, where no public resolver or test helper "
    "answers: measuring with the lab's, as with --lab"
)


def fail(command: str, sentence: str, code: int = 2) -> NoReturn:
    """Print ``didban COMMAND: sentence`` on stderr and exit (2: bad input)."""
    typer.echo(f"didban {command}: {sentence}", err=True)
    raise typer.Exit(code)


def output_target(command: str, output: Path | None, append: bool, default: Path) -> Path:
    """The absolute output file: ``--output``, or ``default`` (a new file named by the
    time) without it. ``--append`` needs ``--output``: there is nothing to append to in a
    file named by the time, and a new one would be written silently."""
    if append and output is None:
        fail(command, "--append needs --output FILE, the file to append to")
    out = (output or default).absolute()
    check_output_target(command, out, append)
    return out


def check_output_target(command: str, path: Path, append: bool) -> None:
    """Exit 2 unless ``path`` can become the output file. Checked first, before the consent
    notice, a lab re-exec or any network request, and without creating anything there."""
    if path.is_dir():
        fail(command, f"--output {path} is a directory; give a file name")
    if not path.parent.is_dir():
        fail(command, f"--output {path}: the directory {path.parent} does not exist")
    if path.exists() and not append:
        fail(command, f"{path} already exists; choose another --output or pass --append")
    if path.exists():  # --append: the file itself must be writable
        if not os.access(path, os.W_OK):
            fail(command, f"cannot write --output {path}: permission denied")
        return
    try:  # can a file be created there? (a temporary one, gone at once)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        fail(command, f"cannot write --output {path}: {exc.strerror or exc}")


def ask(text: str) -> str:
    """Show ``text`` on stderr and read one answer line from stdin (EOFError at the end)."""
    sys.stderr.write(text)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line


def argv_without(argv: list[str], flag: str) -> list[str]:
    """``argv`` without ``flag VALUE`` / ``flag=VALUE``."""
    res: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == flag:
            skip = True
        elif not a.startswith(flag + "="):
            res.append(a)
    return res


def argv_with_output(argv: list[str], out: Path) -> list[str]:
    """``argv`` with every --output/-o value replaced by the absolute path ``out``."""
    return [*argv_without(argv_without(argv, "--output"), "-o"), "--output", str(out)]


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP stop a run the way Ctrl-C does (asyncio cancels the measurements;
    what finished is in the file and the summary is printed), instead of killing it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        signal.raise_signal(signal.SIGINT)

    # A job started in the background by a script inherits SIGINT ignored; asyncio then
    # installs no Ctrl-C handling and the raised SIGINT would do nothing: restore it here.
    previous_int = signal.getsignal(signal.SIGINT)
    if not callable(previous_int):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    stops = (signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, interrupt) for s in stops}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if not callable(previous_int):
            signal.signal(signal.SIGINT, previous_int)
