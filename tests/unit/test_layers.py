"""Imports point one way: the package graph has no cycle and no edge up the layers.

The layers, bottom to top, as the graph reads after issue 14:

    conf  <  streams, cluster  <  shards  <  encoder  <  serve  <  jobs  <  bench

A package imports only packages of a lower layer, never one of its own layer:
``streams`` (everything Kafka, the pin event and its text, routing a pin to its
partition) and ``cluster`` (deployment and capacity planning) import ``conf``
alone and not each other; ``shards`` folds the log that ``streams`` writes;
``encoder`` publishes models the way ``shards`` publishes snapshots; ``serve``
runs all three; ``jobs`` runs the pipeline and the CLI (it reads ``cluster``);
``bench`` drives jobs and reads ``cluster``'s results. Every import counts,
also one inside a function or under ``TYPE_CHECKING``: a lazy import still ties
the two packages together.

``python -m tests.unit.test_layers`` prints the graph, each edge with the
modules that make it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Bottom to top; a package imports only packages of a strictly lower rank.
LAYERS: dict[str, int] = {
    "conf": 0,
    "streams": 1,
    "cluster": 1,
    "shards": 2,
    "encoder": 3,
    "serve": 4,
    "jobs": 5,
    "bench": 6,
}
PACKAGES = tuple(LAYERS)

Edges = dict[tuple[str, str], set[str]]


def imported_modules(tree: ast.Module) -> list[str]:
    """Every absolute module name an ``import`` or ``from ... import`` in the tree names."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def package_edges() -> Edges:
    """(importer, imported) package pairs, each with the modules that import across."""
    edges: Edges = defaultdict(set)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for name in imported_modules(tree):
                target = name.split(".")[0]
                if target in LAYERS and target != package:
                    edges[(package, target)].add(path.relative_to(ROOT).as_posix())
    return dict(edges)


def cycles(edges: Edges) -> list[list[str]]:
    """The package cycles of the graph, each as a path that returns to its start."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                key = frozenset(path)
                if key not in seen:
                    seen.add(key)
                    found.append([*path, start])
            elif nxt not in path:
                walk(start, nxt, [*path, nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return found


def upward(edges: Edges) -> list[tuple[str, str]]:
    """Edges that import a package of the same or a higher layer."""
    return sorted(edge for edge in edges if LAYERS[edge[1]] >= LAYERS[edge[0]])


def test_every_package_of_the_tree_has_a_layer() -> None:
    on_disk = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert on_disk <= set(LAYERS), f"packages without a layer: {sorted(on_disk - set(LAYERS))}"


def test_no_package_imports_one_that_imports_it_back() -> None:
    edges = package_edges()
    cyclic = [" -> ".join(cycle) for cycle in cycles(edges)]
    assert not cyclic, describe_edges(edges, cyclic)


def test_imports_point_down_the_layers() -> None:
    edges = package_edges()
    wrong = [f"{a} -> {b}: {sorted(edges[(a, b)])}" for a, b in upward(edges)]
    assert not wrong, "imports that point up the layers:\n" + "\n".join(wrong)


def describe_edges(edges: Edges, cyclic: list[str] | None = None) -> str:
    """The graph as text: one line per package edge, the importing modules under it."""
    lines: list[str] = []
    for (source, target), modules in sorted(
        edges.items(), key=lambda item: (-LAYERS[item[0][0]], item[0])
    ):
        note = "   <- UP: not allowed" if LAYERS[target] >= LAYERS[source] else ""
        lines.append(f"{source} -> {target}{note}")
        lines.extend(f"    {module}" for module in sorted(modules))
    for cycle in cyclic or []:
        lines.append(f"CYCLE: {cycle}")
    return "\n".join(lines)


if __name__ == "__main__":
    graph = package_edges()
    found = [" -> ".join(cycle) for cycle in cycles(graph)]
    print("layers, top first:", " > ".join(sorted(LAYERS, key=lambda p: (-LAYERS[p], p))))
    print(describe_edges(graph, found))
    print(f"{len(graph)} edges, {len(found)} cycles, {len(upward(graph))} upward imports")
