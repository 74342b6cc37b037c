"""The rule cascade compiled to C with mypyc: which modules, building them, loading them.

The classifier's hot path (``MODULES``) is plain, typed Python. ``make deps`` also compiles
it with mypyc (part of mypy) into ``_compiled/`` beside this file: the same source, run
about 1.2-1.4x faster (docs/methodology.md §7). Compiled modules are loaded only when they
were built from the very sources now on disk: the build writes a stamp with the SHA-256 of
every didban module the compiled ones import (their types are compiled in), and
``search_path`` puts ``_compiled/`` on the package's search path only when every hash
still matches. An edited source therefore runs as Python at once, never as a stale build.
Without a C compiler, or with ``DIDBAN_PURE_PYTHON=1``, everything runs as Python with
the same verdicts (tested).

``main()`` builds (``make deps`` runs it; nothing to do when up to date); it needs mypyc,
setuptools and a C compiler, and says in one line why it did not build otherwise.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

PACKAGE: Final = "didban.analysis"
# The modules compiled: the web cascade and what it calls per measurement. Not the msgspec
# Struct modules (records, fprows, model.verdict): msgspec reads a Struct's field types
# from its class, which a compiled module does not keep.
MODULES: Final = (
    "classify",
    "web",
    "outcome",
    "httpdiff",
    "netaddr",
    "urls",
    "rules",
    "fingerprints",
)
GROUP: Final = f"{PACKAGE}.rules_c"  # mypyc's shared library: didban.analysis.rules_c__mypyc
HERE: Final = Path(__file__).resolve().parent
TARGET: Final = HERE / "_compiled"
STAMP: Final = "SOURCES.json"
ENV_PURE: Final = "DIDBAN_PURE_PYTHON"
SRC_ROOT: Final = HERE.parent.parent  # the directory holding the didban package

_state = "pure Python (not built: make deps builds it)"


def mode() -> str:
    """How the rule cascade runs in this process: compiled, or pure Python and why."""
    return _state


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ext_suffix() -> str:
    return str(sysconfig.get_config_var("EXT_SUFFIX") or "")


def _forced_pure() -> bool:
    return os.environ.get(ENV_PURE, "") not in ("", "0")


def _read_stamp(stamp: Path) -> tuple[str, dict[str, str]]:
    """(ext_suffix, {source path: sha256}); ValueError when the stamp is not that shape."""
    built = json.loads(stamp.read_text(encoding="utf-8"))
    if not isinstance(built, dict):
        raise ValueError("not an object")
    suffix, sources = built.get("ext_suffix"), built.get("sources")
    if not isinstance(suffix, str) or not isinstance(sources, dict):
        raise ValueError("no ext_suffix or sources")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in sources.items()):
        raise ValueError("sources are not path: digest strings")
    return suffix, sources


def search_path(path: list[str], target: Path = TARGET, root: Path = SRC_ROOT) -> list[str]:
    """The package search path: ``target`` first when its build matches the sources under
    ``root`` (the directory holding the didban package)."""
    global _state
    if _forced_pure():
        _state = f"pure Python ({ENV_PURE} is set)"
        return path
    try:
        suffix, sources = _read_stamp(target / STAMP)
    except FileNotFoundError:
        return path
    except (OSError, ValueError, UnicodeDecodeError):
        _state = "pure Python (the compiled build's stamp is unreadable: make deps rebuilds it)"
        return path
    if suffix != _ext_suffix():
        _state = f"pure Python (built for another interpreter, {suffix})"
        return path
    for rel, digest in sources.items():
        try:
            same = _digest(root / rel) == digest
        except OSError:
            same = False
        if not same:
            _state = f"pure Python ({rel} changed since the compiled build: make deps rebuilds it)"
            return path
    if not _complete(target, suffix):
        _state = "pure Python (the compiled build is incomplete: make deps rebuilds it)"
        return path
    _state = f"compiled (mypyc: {', '.join(MODULES)})"
    return [str(target), *path]


def check_loads(path: list[str], package: str) -> list[str]:
    """Run by the package right after ``search_path``: import the build's shared library
    (all the compiled code) now, so that a build that matches its stamp but does not load
    (a damaged file, a missing system library) leaves the package in Python instead of
    breaking every import of it — and ``make deps``, which imports it to rebuild."""
    global _state
    if not path or path[0] != str(TARGET):
        return path
    name = f"{package}.{GROUP.rpartition('.')[2]}__mypyc"
    try:
        importlib.import_module(name)
    except (ImportError, OSError) as exc:
        sys.modules.pop(name, None)
        _state = f"pure Python (the compiled build does not load: {exc}; make deps rebuilds it)"
        return path[1:]
    return path


def _complete(target: Path, suffix: str) -> bool:
    names = [*MODULES, GROUP.rpartition(".")[2] + "__mypyc"]
    return all((target / f"{m}{suffix}").is_file() for m in names)


def _imports(path: Path) -> set[str]:
    """The didban modules ``path`` imports (static: ``import`` and ``from`` statements)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m == "didban" or m.startswith("didban.")}


def _module_file(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def dependencies(root: Path = SRC_ROOT) -> list[Path]:
    """The compiled modules and every didban module they import, transitively."""
    todo = [f"{PACKAGE}.{m}" for m in MODULES]
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        file = _module_file(name, root)
        if file is None:  # a name imported from a module, not a module
            continue
        seen[name] = file
        todo.extend(_imports(file))
        parent = name.rpartition(".")[0]
        if parent:
            todo.append(parent)  # importing a module runs its package's __init__
    return sorted(set(seen.values()))


def _stamp(root: Path) -> dict[str, Any]:
    return {
        "ext_suffix": _ext_suffix(),
        "sources": {str(p.relative_to(root)): _digest(p) for p in dependencies(root)},
    }


def up_to_date(target: Path = TARGET, root: Path = SRC_ROOT) -> bool:
    try:
        built = json.loads((target / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return _complete(target, _ext_suffix()) and built == _stamp(root)


def _missing_tools() -> str | None:
    """Why this machine cannot compile, or None."""
    try:
        import mypyc.build  # noqa: F401
        import setuptools  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (uv sync installs the dev group)"
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    if shutil.which(str(cc).split()[0]) is None:
        return f"no C compiler ({str(cc).split()[0]} not found)"
    include = sysconfig.get_paths().get("include")
    if not include or not (Path(include) / "Python.h").is_file():
        return f"no Python headers (Python.h not in {include})"
    return None


@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """The process's stdout and stderr (the compiler's too) go to ``log`` meanwhile."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("wb") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """One build at a time per checkout (two ``make`` runs at once share the staging names)."""
    with target.with_name(target.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(target: Path = TARGET, root: Path = SRC_ROOT) -> str:
    """Compile ``MODULES`` into ``target`` unless up to date; returns what was done ('' if
    nothing was)."""
    if up_to_date(target, root):
        return ""
    why = _missing_tools()
    if why:
        return f"note: the rules run as pure Python, not compiled: {why}"
    with _locked(target):
        if up_to_date(target, root):  # another build finished while this one waited
            return ""
        return _build(target, root)


def _build(target: Path, root: Path) -> str:
    from mypyc.build import mypycify
    from setuptools import Distribution

    stamp = _stamp(root)  # hashed before compiling: an edit during the build goes stale
    with tempfile.TemporaryDirectory(prefix="didban-mypyc-") as tmp:
        work = Path(tmp)
        log = work / "build.log"
        cwd = os.getcwd()
        try:
            with _output_to(log):
                os.chdir(root)  # mypy resolves didban.* from here; names modules by paths
                paths = [f"--cache-dir={work / 'mypy-cache'}"]  # not a .mypy_cache in src/
                paths += [str(Path(*PACKAGE.split("."), f"{m}.py")) for m in MODULES]
                extensions = mypycify(
                    paths, opt_level="3", target_dir=str(work / "c"), group_name=GROUP
                )
                dist = Distribution({"name": "didban-rules-compiled", "ext_modules": extensions})
                cmd: Any = dist.get_command_obj("build_ext")
                cmd.build_lib = str(work / "lib")
                cmd.build_temp = str(work / "tmp")
                cmd.inplace = False
                dist.run_command("build_ext")
        except (Exception, SystemExit) as exc:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
            what = f"{type(exc).__name__}: {str(exc)[:160]}"
            raise RuntimeError(" / ".join([what, *(line[:160] for line in tail)])) from None
        finally:
            os.chdir(cwd)
        built = work / "lib" / Path(*PACKAGE.split("."))
        # staged beside the target and renamed into place: never a half-copied build
        staging = target.with_name(target.name + ".new")
        old = target.with_name(target.name + ".old")
        for d in (staging, old):
            shutil.rmtree(d, ignore_errors=True)
        staging.mkdir()
        for so in built.glob(f"*{_ext_suffix()}"):
            shutil.copy2(so, staging / so.name)
        (staging / STAMP).write_text(json.dumps(stamp, indent=1) + "\n", encoding="utf-8")
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    return f"compiled the rules with mypyc into {target}"


ENV_REQUIRE: Final = "DIDBAN_REQUIRE_COMPILED"  # CI: a build that fails is an error


def main() -> int:
    """Build, and say what happened in one line. Exit 0 also when it did not build (the
    rules then run as Python) — except when a build was attempted and failed while
    ``DIDBAN_REQUIRE_COMPILED=1`` (CI sets it: a mypyc or compiler regression must not
    pass as skipped tests). A machine without the tools only gets the note."""
    failed = False
    try:
        done = build()
    except Exception as exc:  # a failed build leaves the rules in pure Python, never broken
        done = f"note: the rules run as pure Python, not compiled: the build failed ({exc})"
        failed = True
    if done:
        print(done)
    if failed and os.environ.get(ENV_REQUIRE, "") not in ("", "0"):
        print(f"error: the compiled build failed and {ENV_REQUIRE} is set", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
