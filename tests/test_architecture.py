"""Imports point down: no cycles in zoo/, and each layer imports only the layers below it.

The graph is read from the source with ``ast``, counting every import: at module top,
inside functions (zoo imports late to start fast) and under ``TYPE_CHECKING``. The
layers are those of docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zoo"

#: zoo's layers, lowest first: packages and the plugin host's modules. A module may import
#: its own layer and those below it (docs/architecture.md draws the same map).
LAYERS = (
    ("foundation", ["zoo.errors", "zoo._version"]),
    ("storage", ["zoo.storage"]),
    ("declarations", ["zoo.params", "zoo.components", "zoo.hookspecs"]),
    ("configuration", ["zoo.config"]),
    ("plugin host", ["zoo.registry", "zoo.plugins", "zoo.runconfig"]),
    ("runtime", ["zoo.runtime"]),
    ("data", ["zoo.data"]),
    ("model", ["zoo.model"]),
    ("console", ["zoo.console"]),
    ("downloads", ["zoo.downloads"]),
    ("results", ["zoo.results"]),
    ("training", ["zoo.train"]),
    ("tuning", ["zoo.tune"]),
    ("testing kit", ["zoo.testing"]),
    ("interface", ["zoo", "zoo.__main__", "zoo.cli", "zoo.commands", "zoo.builtins"]),
)
UNITS = [unit for _, units in LAYERS for unit in units]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str) -> set[str]:
    """The zoo modules ``name`` imports; ``from zoo import x`` is module ``zoo.x`` if
    there is one, else the package ``zoo`` itself (its public API)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: imported(name) for name in MODULES}


def unit_of(name: str) -> str:
    """The package or host module ``name`` belongs to: ``zoo.train.loop`` is ``zoo.train``."""
    found = [unit for unit in UNITS if name == unit or name.startswith(unit + ".")]
    if not found:
        raise AssertionError(f"{name} belongs to no layer: add it to LAYERS and the docs")
    return max(found, key=len)


def layer_of(name: str) -> int:
    unit = unit_of(name)
    return next(i for i, (_, units) in enumerate(LAYERS) if unit in units)


def cycle_from(start: str) -> list[str] | None:
    """An import cycle through ``start``, as a path of module names, or ``None``."""
    stack = [(start, [start])]
    seen = set()
    while stack:
        name, path = stack.pop()
        for target in sorted(GRAPH[name]):
            if target == start:
                return [*path, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


def test_the_graph_is_read_from_the_source():
    assert "zoo.errors" in GRAPH["zoo.model.assemble"]
    assert "zoo.train.loop" in GRAPH["zoo.train.trainer"]
    assert "zoo.train.engine" in GRAPH["zoo"]  # the public API


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_itself_back(name: str):
    assert cycle_from(name) is None, " -> ".join(cycle_from(name) or [])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports_only_its_own_layer_and_those_below(name: str):
    upward = [
        f"{target} ({LAYERS[layer_of(target)][0]})"
        for target in sorted(GRAPH[name])
        if layer_of(target) > layer_of(name)
    ]

    assert not upward, f"{name} ({LAYERS[layer_of(name)][0]}) imports upward: {upward}"


DISPLAY = {name for name in MODULES if unit_of(name) == "zoo.console"}


def test_only_the_reporter_prints_during_training():
    printing = {name for name in MODULES if name.startswith("zoo.train")}
    printing = {name for name in printing if DISPLAY & GRAPH[name]}

    assert printing == {"zoo.train.reporter"}


def test_the_packages_import_each_other_in_one_direction():
    """Read at the level of packages, the graph has no cycle either: each package, as a
    whole, sits above or below each other one."""
    edges = {(unit_of(a), unit_of(b)) for a, targets in GRAPH.items() for b in targets}
    both_ways = sorted((a, b) for a, b in edges if a < b and (b, a) in edges)

    assert both_ways == []


def test_every_module_and_built_in_plugin_is_under_400_lines():
    files = [*MODULES.values(), *sorted((PACKAGE.parent / "plugins").glob("*.py"))]
    lengths = {
        str(path.relative_to(PACKAGE.parent)): len(path.read_text().splitlines()) for path in files
    }

    assert {name: n for name, n in lengths.items() if n >= 400} == {}


def test_every_package_says_what_it_holds():
    """A package's ``__init__.py`` opens with a docstring: the folder list reads as the map."""
    packages = [name for name, path in MODULES.items() if path.name == "__init__.py"]
    undocumented = [
        name for name in packages if not ast.get_docstring(ast.parse(MODULES[name].read_text()))
    ]

    assert len(packages) >= 12 and undocumented == []
