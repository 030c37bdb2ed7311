"""``zoo list``: datasets, backbones, heads, plugins and recipes."""

from __future__ import annotations

import argparse
from typing import Any

from zoo import console
from zoo.commands._common import entry_json, plugin_json, registry_from
from zoo.components import ALL_KINDS, Component
from zoo.console import transfers
from zoo.downloads.readiness import Target, needs, summarise, targets
from zoo.errors import ZooError
from zoo.registry import Entry, Registry

POSITION = 10
LISTABLE = ("datasets", "backbones", "heads", "observers", "plugins", "recipes")


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "list",
        parents=[common],
        help="list datasets, backbones, heads, run observers, plugins, recipes",
    )
    parser.add_argument(
        "what", nargs="?", choices=LISTABLE, help="one kind only (default: components, recipes)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    registry = registry_from(args)
    wanted = [args.what] if args.what else [f"{k}s" for k in ALL_KINDS] + ["recipes"]
    if args.json:
        data = {what: listing(registry, what) for what in wanted}
        console.print_json(data[args.what] if args.what else data)
        return 0
    for what in wanted:
        if what == "plugins":
            console.plugins(registry.plugins)
        elif what == "recipes":
            found = registry.recipes()
            labels = {n: transfers.readiness(recipe_readiness(registry, n)) for n in found}
            console.recipes(found, labels)
        else:
            kind = what[:-1]
            entries = registry.entries(kind)
            labels = {e.qualified_name: transfers.readiness(readiness(e)) for e in entries}
            console.components(kind, registry, labels if kind != "observer" else None)
    return 0


def readiness(entry: Entry[Component]) -> dict[str, Any]:
    """Whether ``entry``, with its defaults, works offline (``stat`` calls only)."""
    return needs(Target(entry)).summary()


def recipe_readiness(registry: Registry, name: str) -> dict[str, Any]:
    """Whether the recipe's three components, with its values, work offline."""
    try:
        return summarise([needs(t) for t in targets(registry, [name])])
    except ZooError as exc:  # the recipe names a component that is not registered
        return summarise([], exc)


def listing(registry: Registry, what: str) -> list[dict[str, Any]]:
    if what == "plugins":
        return [plugin_json(p) for p in registry.plugins]
    if what == "recipes":
        return [
            {
                "name": r.name,
                "description": r.description,
                "dataset": r.dataset,
                "backbone": r.backbone,
                "head": r.head,
                "settings": dict(r.settings),
                "params": {k: dict(v) for k, v in r.params.items()},
                "source": r.source,
                "offline": recipe_readiness(registry, r.name),
            }
            for r in registry.recipes().values()
        ]
    return [{**entry_json(e), "offline": readiness(e)} for e in registry.entries(what[:-1])]
