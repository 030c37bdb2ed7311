"""``zoo run``: train and evaluate a dataset/backbone/head combination."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from zoo import console
from zoo.commands._common import registry_from

POSITION = 30


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "run",
        parents=[common],
        help="train and evaluate DATASET BACKBONE HEAD",
        description="Train BACKBONE + HEAD on DATASET, evaluate it, and write a run directory.",
        epilog="example: zoo run shapes small_cnn gap_sigmoid --epochs 3 "
        "--set dataset.num_images=500",
    )
    add_ = parser.add_argument
    add_("names", nargs="*", metavar="DATASET BACKBONE HEAD", help="the three components")
    add_("--recipe", help="run a recipe from a registry file instead of naming components")
    add_("--epochs", type=int, help="passes over the training split")
    add_("--batch-size", type=int, help="images per step (the global batch)")
    add_("--image-size", type=int, help="resize images to SIZE x SIZE")
    add_("--learning-rate", type=float, help="the optimizer's learning rate")
    add_("--optimizer", help="adam, sgd or rmsprop")
    add_("--seed", type=int, help="seeds shuffling and initialisation")
    add_(
        "--output",
        type=Path,
        default=Path("runs"),
        metavar="DIR",
        help="where run directories go (default: ./runs)",
    )
    add_(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KIND.PARAM=VALUE",
        help="set a component parameter, e.g. --set backbone.weights=none (repeatable)",
    )
    add_("--dry-run", action="store_true", help="check and print the model summary, then stop")
    add_("--json", action="store_true", help="print the run's metrics as JSON at the end")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from zoo.engine import run as run_experiment
    from zoo.runconfig import resolve_run

    registry = registry_from(args)
    resolved = resolve_run(
        registry,
        args.names,
        recipe=args.recipe,
        settings={
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "image_size": args.image_size,
            "learning_rate": args.learning_rate,
            "optimizer": args.optimizer,
            "seed": args.seed,
        },
        sets=args.sets,
    )
    console.tables_to_stderr(args.json)
    result = run_experiment(
        resolved, output=args.output, dry_run=args.dry_run, command=["zoo", *sys.argv[1:]]
    )
    if args.json:
        console.print_json(
            {"run_dir": result.run_dir, "parameters": result.parameters, **result.metrics}
        )
    return 0
