"""Imports run one way: no package imports a package that imports it back, by name or by string.

The graph is read from the source (every ``import``/``from`` statement, at any depth, and every
string literal naming a ``brokenchairs.`` module, as the executors' ``"module:function"`` names
do). A node is a package of the tree: ``dataset``, ``models``, ``benchmark``, ``blender_scripts``,
``data_manifests``, each subpackage of ``generation`` (``generation.pipeline``...), and each
module of the ``brokenchairs`` root (``brokenchairs.cli``, ``brokenchairs.errors``...).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"brokenchairs": "brokenchairs", "generation": "generation", "dataset": "dataset", "models": "models",
           "benchmark": "benchmark", "blender_scripts": "blender_scripts", "data_manifests": "data_manifests"}
NAMED = re.compile(r"^brokenchairs\.[a-z_.]+")


def node(module: str) -> str:
    """brokenchairs.generation.pipeline.plan -> generation.pipeline; brokenchairs.errors -> brokenchairs.errors."""
    parts = module.split(".")[1:]
    if not parts:
        return "brokenchairs"
    if parts[0] not in FOLDERS or parts[0] == "brokenchairs":
        return "brokenchairs." + parts[0]
    if parts[0] == "generation" and len(parts) > 1 and (ROOT / "generation" / parts[1]).is_dir():
        return "generation." + parts[1]
    return parts[0]


def module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    names = list(rel.parts)
    if names[-1] == "__init__":
        names = names[:-1]
    return "brokenchairs." + ".".join(names) if names[0] != "brokenchairs" else ".".join(names)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("brokenchairs"):
            found.add(n.module)
            found.update(f"{n.module}.{a.name}" for a in n.names)  # from package import module
        elif isinstance(n, ast.Import):
            found.update(a.name for a in n.names if a.name.startswith("brokenchairs"))
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            m = NAMED.match(n.value.split(":")[0])
            if m and m.group(0) == n.value.split(":")[0]:
                found.add(m.group(0))
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for folder in FOLDERS.values():
        for path in (ROOT / folder).rglob("*.py"):
            src = node(module_of(path))
            for target in imports_of(path):
                dst = node(target)
                if dst != src:
                    edges.setdefault(src, set()).add(dst)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    edges = graph()
    # known edges, so that a parser that finds nothing fails here rather than passing below
    assert "generation.units" in edges["blender_scripts"]
    assert "blender_scripts" in edges["generation.pipeline"]  # by string: "brokenchairs.blender_scripts.query_worker:run"
    assert "dataset" in edges["benchmark"] and "models" in edges["benchmark"]


def test_no_package_imports_one_that_imports_it_back():
    found = cycles(graph())
    assert not found, f"import cycles between packages: {found}"


def test_layers():
    edges = graph()
    upper = {n for n in edges if n.startswith("generation")} | {"benchmark", "models", "blender_scripts"}
    assert not edges["dataset"] & upper  # the format imports neither side
    assert "generation.pipeline" not in edges["blender_scripts"]  # the worker imports nothing from the run layer
    assert not {n for n in edges.get("generation.units", set()) if n in ("generation.pipeline", "blender_scripts")}
