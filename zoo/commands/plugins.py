"""``zoo plugins``: every plugin, where it comes from, what it registered, its status."""

from __future__ import annotations

import argparse
from typing import Any

from zoo import console
from zoo.commands._common import plugin_json, registry_from
from zoo.registry import PluginInfo

POSITION = 40


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "plugins",
        parents=[common],
        help="every plugin: package, version, source, components, status",
        description="List every plugin zoo found: built-in, installed (entry points in the "
        "group 'zoo') and local (registry.toml), with what each registered and whether it "
        "loaded, was disabled, or failed (and why).",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # No warning line per failed plugin: the table and JSON say it in full.
    registry = registry_from(args, warn_failed=False)
    if args.json:
        console.print_json([details(p) for p in registry.plugins])
    else:
        console.plugins(registry.plugins)
    return 0


def details(plugin: PluginInfo) -> dict[str, Any]:
    """``plugin_json`` plus the components a failed plugin offered before it failed."""
    return {**plugin_json(plugin), "unavailable": list(plugin.unavailable)}
