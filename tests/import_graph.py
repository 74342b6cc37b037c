"""Cycles in an import graph (module → the modules it imports), for the layer tests of the
whole tree (tests/test_layers.py) and of net/ (tests/net/test_imports.py)."""

from __future__ import annotations

from collections.abc import Collection, Mapping


def find_cycle(graph: Mapping[str, Collection[str]]) -> list[str] | None:
    """One import cycle as the modules along it (first = last), or None; depth-first in
    sorted order, so the same tree always names the same cycle."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return [*stack[stack.index(d) :], d]
            if d not in state and (found := visit(d)) is not None:
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)) is not None:
            return found
    return None
