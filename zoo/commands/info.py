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
    parser.add_argument(
        "--layers",
        action="store_true",
        help="build a backbone and list its layers: which hold weights, and the "
        "--fine-tune-layers N that starts at each",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.layers:
        return layers(args)
    found = registry_from(args).find(args.name)
    if args.json:
        console.print_json([entry_json(e) for e in found])
        return 0
    for entry in found:
        console.component_info(entry)
    return 0


def layers(args: argparse.Namespace) -> int:
    from zoo.runtime import loader

    entry = registry_from(args).get("backbone", args.name)
    loader.load()
    from zoo.train.finetune import layers_json  # Keras at its top: after the name is checked

    listing = layers_json(entry)
    if args.json:
        console.print_json(listing)
        return 0
    title = f"backbone {entry.name}: {len(listing['layers'])} layers at {listing['image_size']}px"
    console.backbone_layers(title, listing["layers"], listing["note"])
    return 0
