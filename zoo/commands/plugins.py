"""``zoo plugins``: every plugin, where it comes from, what it registered, its status."""

from __future__ import annotations

import argparse
from typing import Any

from zoo import console
from zoo.commands._common import plugin_json
from zoo.plugins import LoadOptions, load_registry
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
    # Not _common.registry_from: its one warning line per failed plugin would repeat
    # what this command's table and JSON already say in full.
    registry = load_registry(
        LoadOptions(
            registry=args.registry,
            disable=args.disable_plugin,
            builtins_only=args.builtins_only,
        )
    )
    for warning in registry.warnings:
        console.warning(warning)
    if args.json:
        console.print_json([details(p) for p in registry.plugins])
    else:
        console.plugins(registry.plugins)
    return 0


def details(plugin: PluginInfo) -> dict[str, Any]:
    """``plugin_json`` plus the components a failed plugin offered before it failed."""
    return {**plugin_json(plugin), "unavailable": list(plugin.unavailable)}
