"""net/ depends one way: no import cycle between its modules, and no import hidden inside
a function (the way a cycle used to be broken: http imported dns inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

from import_graph import find_cycle

NET = Path(__file__).resolve().parents[2] / "src" / "didban" / "net"


def _module(path: Path) -> str:
    parts = path.relative_to(NET.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    modules = {_module(p): p for p in NET.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    hidden: list[str] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        top = set(tree.body)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                # ``from package import module`` depends on the module, else on ``module``
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
            # a module's own packages are always initialised before it: not an edge
            inside = [
                t for t in targets if t in modules and t != name and not name.startswith(t + ".")
            ]
            if inside and node not in top:
                hidden.append(f"{path.name}:{node.lineno}")
            graph[name].update(inside)
    return graph, hidden


def test_net_has_no_import_cycle_and_no_hidden_import() -> None:
    graph, hidden = _graph()
    assert "didban.net.http" in graph and "didban.net.dns.doh" in graph
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph) or [])
    assert hidden == []
    # DoH is a DNS transport over HTTP: DNS may use HTTP, HTTP never DNS
    assert "didban.net.http" in graph["didban.net.dns.doh"]
    assert not any(d.startswith("didban.net.dns") for d in graph["didban.net.http"])
