"""``zoo demo``: transfer learning you can see, offline, in under a minute on 2 CPU cores.

Runs the ``demo_pretrained`` and ``demo_scratch`` recipes (the same small CNN on ring
vs diamond, pretrained on other shapes and frozen, or trained from random weights;
same epochs and seed), then compares them: a table and a PNG figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from zoo import console
from zoo.commands._common import registry_from
from zoo.commands.compare import show
from zoo.config.settings import BY_NAME
from zoo.storage import runs

POSITION = 80
RECIPES = ("demo_pretrained", "demo_scratch")
FIGURE = "comparison.png"


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "demo",
        parents=[common],
        help="transfer learning offline: pretrained vs from scratch",
        description="Train the same CNN twice on ring vs diamond, pretrained (frozen) and "
        "from scratch, with the same epochs and seed; then compare the two runs.",
    )
    add_ = parser.add_argument
    add_(
        "--output",
        type=Path,
        default=Path("runs"),
        metavar="DIR",
        help="a new demo directory goes here, holding both runs and the figure (default: ./runs)",
    )
    add_("--epochs", type=int, help=f"{BY_NAME['epochs'].help} (default: the recipes')")
    add_("--num-images", type=int, help="images drawn for the task (default: the recipes')")
    add_("--json", action="store_true", help="print the comparison's data as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from zoo.runconfig import resolve_run
    from zoo.train.engine import run as run_experiment

    registry = registry_from(args)
    sets = [f"dataset.num_images={args.num_images}"] if args.num_images is not None else []
    resolved = [
        resolve_run(registry, recipe=name, settings={"epochs": args.epochs}, sets=sets)
        for name in RECIPES
    ]
    demo_dir = runs.new_run_dir(args.output, "demo")
    command = ["zoo", *sys.argv[1:]]
    run_dirs = []
    for name, each in zip(RECIPES, resolved, strict=True):
        console.status(f"demo: recipe {name}")
        result = run_experiment(each, output=demo_dir, command=command)
        if result.run_dir is None:  # a worker that is not the chief: nothing to compare
            return 0
        run_dirs.append(result.run_dir)
    show(run_dirs, demo_dir / FIGURE, as_json=args.json)
    return 0
