"""The house's rules, derived from the sources: no import cycle between modules, and every
import between packages points down the layer order of DESIGN.md §2 (docs/architecture.md
says where and why didban's order adds to it).

Imports inside functions count like any other (they are how the command line loads only
the package it needs, and also how a cycle hides); an import of a module's own package is
not an edge (a package is always initialised before its modules).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

from import_graph import find_cycle

SRC: Final = Path(__file__).resolve().parents[1] / "src"

# Lowest first; packages on one rank never import each other.
LAYERS: Final[tuple[frozenset[str], ...]] = tuple(
    frozenset(rank.split())
    for rank in (
        "model",
        "data files",
        "net",
        "control",
        "probe",
        "analysis",
        "store",
        "events",
        "api",
        "web",
        "scale",
    )
)
RANK: Final = {package: i for i, rank in enumerate(LAYERS) for package in rank}
# The lab sits beside the layers: it may use these, and only the command line, the demo
# and the tests may use it.
LAB_USES: Final = frozenset({"model", "data", "files", "net", "control"})
TOP: Final = "didban"  # didban/cli.py, demo.py, __init__.py: wire everything together


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "didban").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _graph(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {imported didban module: line}, every import wherever it stands."""

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {m: {} for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [
                    f"{node.module}.{a.name}"
                    if f"{node.module}.{a.name}" in modules
                    else node.module
                    for a in node.names
                ]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                found = resolve(target) if target.startswith("didban") else None
                if found and found != name and not name.startswith(found + "."):
                    graph[name].setdefault(found, node.lineno)
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in {*RANK, "lab"}) else TOP


def _wrong_way(graph: dict[str, dict[str, int]], modules: dict[str, Path]) -> list[str]:
    wrong = []
    for module, imports in graph.items():
        here = _package(module)
        for target, line in imports.items():
            there = _package(target)
            if here in (there, TOP):
                continue
            where = f"{modules[module].relative_to(SRC)}:{line} imports {target}"
            if there == "lab":
                wrong.append(f"{where} (only the command line, the demo and tests use the lab)")
            elif here == "lab":
                if there not in LAB_USES:
                    wrong.append(f"{where} (the lab uses only {', '.join(sorted(LAB_USES))})")
            elif there == TOP or RANK[there] >= RANK[here]:
                wrong.append(f"{where} (an import must point down the layers)")
    return wrong


def test_every_package_has_its_place() -> None:
    packages = {p.name for p in (SRC / "didban").iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(RANK) | {"lab"}, packages - set(RANK) - {"lab"}


def test_no_module_imports_in_a_circle() -> None:
    graph = _graph(_modules())
    assert "didban.net.http" in graph["didban.net.dns.doh"]  # the graph is really read
    cycle = find_cycle(graph)
    assert cycle is None, " → ".join(cycle or [])


def test_every_import_points_down_the_layers() -> None:
    modules = _modules()
    assert _wrong_way(_graph(modules), modules) == []


def test_the_check_sees_an_import_that_points_up() -> None:
    modules = _modules()
    graph = _graph(modules)
    graph["didban.net.http"] = {**graph["didban.net.http"], "didban.analysis.classify": 1}
    graph["didban.store.store"] = {**graph["didban.store.store"], "didban.lab.profiles": 1}
    wrong = _wrong_way(graph, modules)
    assert any("net/http.py:1 imports didban.analysis.classify" in w for w in wrong), wrong
    assert any("only the command line" in w for w in wrong), wrong
    graph["didban.model.ooni"] = {"didban.model.failures": 1}
    graph["didban.model.failures"] = {"didban.model.ooni": 1}
    assert find_cycle(graph) is not None
