"""``zoo info NAME``: one component's description and parameters."""

from __future__ import annotations

import argparse
from typing import Any

from zoo import console
from zoo.commands._common import entry_json, registry_from

POSITION = 20


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "info", parents=[common], help="one component's description and parameters"
    )
    parser.add_argument("name", help="a component name, or PLUGIN:NAME")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    found = registry_from(args).find(args.name)
    if args.json:
        console.print_json([entry_json(e) for e in found])
        return 0
    for entry in found:
        console.component_info(entry)
    return 0
