"""Every command's --help as a new user reads it: readable labels for what to type, no
Python types, and help that names the flags as they are spelt."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from didban.cli import app

runner = CliRunner()


def _commands(command: Any, path: list[str]) -> Iterator[list[str]]:
    yield path
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from _commands(sub, [*path, name])


COMMANDS = list(_commands(typer.main.get_command(app), []))


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w) or "didban")
def test_help_labels_values_by_what_to_type(words: list[str]) -> None:
    r = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    # typer's own labels after a flag or an argument: <path>, <list[Path]>, <int range>;
    # {DOMAIN}... in the usage line
    assert not re.search(r"-[-a-z]+ <[a-z]", r.stdout), r.stdout
    assert not re.search(r"^ +[A-Z][A-Z_.]* <[a-z]", r.stdout, re.MULTILINE), r.stdout
    assert not re.search(r"\{[A-Z_]+\}", r.stdout), r.stdout
    assert "Traceback" not in r.output


def test_the_labels_a_user_sees() -> None:
    dnscheck = runner.invoke(app, ["dnscheck", "--help"], env={"COLUMNS": "100"}).stdout
    assert "Usage: didban dnscheck [OPTIONS] DOMAIN..." in dnscheck
    assert "--resolver IP[:PORT]" in dnscheck and "-o, --output FILE" in dnscheck
    analyze = runner.invoke(app, ["analyze", "--help"], env={"COLUMNS": "100"}).stdout
    assert "PATH...  Measurement files" in analyze and "-j, --jobs INTEGER" in analyze
    up = runner.invoke(app, ["lab", "up", "--help"], env={"COLUMNS": "100"}).stdout
    assert "-p, --profile PROFILE" in up and "with PROFILE" not in up
    serve = runner.invoke(app, ["control", "serve", "--help"], env={"COLUMNS": "100"}).stdout
    assert "--asn-map FILE" in serve and "A JSON file holding a list of" in serve


def test_data_update_from_a_path_that_does_not_exist_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "asn.tgz"
    r = runner.invoke(app, ["data", "update", "--from", str(missing)])
    assert r.exit_code == 2
    assert r.stderr == f"error: --from {missing} does not exist\n"
    not_a_tarball = tmp_path / "x.tgz"
    not_a_tarball.write_text("hello")
    r = runner.invoke(app, ["data", "update", "--from", str(not_a_tarball)])
    assert r.exit_code == 2
    assert r.stderr == f"error: {not_a_tarball} is not a package tarball (.tgz)\n"
