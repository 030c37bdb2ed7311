"""``zoo info NAME``: one component's description and parameters, or one recipe."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from zoo import console
from zoo.commands._common import entry_json, registry_from
from zoo.commands.listing import listing, recipe_readiness
from zoo.components import Backbone, Component
from zoo.config.registry_file import Recipe
from zoo.console import transfers
from zoo.errors import ZooError
from zoo.params import resolve
from zoo.registry import Entry, Registry
from zoo.runconfig import parse_assignment

POSITION = 20


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "info", parents=[common], help="one component's or recipe's description and parameters"
    )
    parser.add_argument("name", help="a component or recipe name, or PLUGIN:NAME")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--layers",
        action="store_true",
        help="build a backbone and list its layers: which hold weights, and the "
        "--fine-tune-layers N that starts at each",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KIND.PARAM=VALUE",
        help="with --layers, build the backbone with this parameter, as zoo run does, "
        "e.g. --set backbone.preset=DIR (repeatable)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    registry = registry_from(args)
    if args.layers:
        return layers(args, registry)
    if args.sets:
        raise ZooError(
            "zoo info takes --set only with --layers, to build the backbone it lists.",
            expected=f"zoo info {args.name} --layers --set backbone.PARAM=VALUE",
            fix="add --layers, or drop --set: zoo info lists every parameter and its default",
            got=" ".join(args.sets),
        )
    found, recipe = named(registry, args.name)
    if args.json:
        console.print_json([entry_json(e) for e in found] + recipe_json(registry, recipe))
        return 0
    for entry in found:
        console.component_info(entry)
    if recipe:
        ready = transfers.readiness(recipe_readiness(registry, recipe.name))
        console.recipe_info(with_params_shown(recipe), ready)
    return 0


def named(registry: Registry, name: str) -> tuple[list[Entry[Component]], Recipe | None]:
    """The components called ``name``, and the recipe of that name if there is one.

    Raises:
        ZooError: neither a component nor a recipe is called that.
    """
    recipe = registry.recipes().get(name)
    try:
        return registry.find(name), recipe
    except ZooError:
        if recipe is None:
            raise
        return [], recipe


def recipe_json(registry: Registry, recipe: Recipe | None) -> list[dict[str, Any]]:
    """``recipe`` as ``zoo list recipes --json`` gives it, marked ``"kind": "recipe"``."""
    rows = listing(registry, "recipes") if recipe else []
    return [{"kind": "recipe", **row} for row in rows if recipe and row["name"] == recipe.name]


def with_params_shown(recipe: Recipe) -> Recipe:
    """``recipe`` with its component parameters among its settings, written as ``--set``
    writes them (``backbone.weights=imagenet``), for the recipes table."""
    params = {f"{kind}.{k}": v for kind, values in recipe.params.items() for k, v in values.items()}
    return dataclasses.replace(recipe, settings={**recipe.settings, **params})


def layers(args: argparse.Namespace, registry: Registry) -> int:
    from zoo.runtime import loader

    entry = with_sets(registry.get("backbone", args.name), args.sets)
    loader.load()
    from zoo.train.finetune import layers_json  # Keras at its top: after the name is checked

    listing = layers_json(entry)
    if args.json:
        console.print_json(listing)
        return 0
    title = f"backbone {entry.name}: {len(listing['layers'])} layers at {listing['image_size']}px"
    console.backbone_layers(title, listing["layers"], listing["note"])
    return 0


def with_sets(entry: Entry[Backbone], sets: list[str]) -> Entry[Backbone]:
    """``entry`` with the ``--set backbone.PARAM=VALUE`` values on top of its registry
    defaults, so the backbone is built with them; each value is checked here first.

    Raises:
        ZooError: an assignment is malformed, sets another kind, or a parameter the
            backbone does not have, or a bad value.
    """
    overrides = {}
    for text in sets:
        kind, param, value = parse_assignment(text)
        if kind != "backbone":
            raise ZooError(
                f"--set {text} sets a {kind} parameter; zoo info --layers builds a backbone.",
                expected="--set backbone.PARAM=VALUE",
                fix=f"drop it, or write --set backbone.{param}={value}",
                got=text,
            )
        overrides[param] = value
    if not overrides:
        return entry
    defaults = entry.meta.defaults
    resolve(
        "backbone",
        entry.name,
        entry.params,
        [(entry.meta.source or "registry.toml", defaults), ("--set", overrides)],
    )
    meta = dataclasses.replace(entry.meta, defaults={**defaults, **overrides})
    return dataclasses.replace(entry, meta=meta)
