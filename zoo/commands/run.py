"""``zoo run``: train and evaluate a dataset/backbone/head combination, or resume one."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from zoo import console
from zoo.commands._common import add_settings, cache_max_size, registry_from
from zoo.config.settings import BY_NAME, SETTINGS
from zoo.errors import ZooError
from zoo.storage.sizes import parse_size
from zoo.train.distribute import PRECISIONS, STRATEGIES

POSITION = 30


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "run",
        parents=[common],
        help="train and evaluate DATASET BACKBONE HEAD",
        description="Train BACKBONE + HEAD on DATASET, evaluate it, and write a run directory.",
        epilog="examples: zoo run shapes small_cnn gap_sigmoid --epochs 3; "
        "zoo run --recipe tutorial_transfer; zoo run --resume runs/RUN; "
        "zoo run shapes small_cnn gap_sigmoid --find-lr",
    )
    add_ = parser.add_argument
    add_("names", nargs="*", metavar="DATASET BACKBONE HEAD", help="the three components")
    add_("--recipe", help="run a recipe from a registry file instead of naming components")
    add_("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run")
    add_settings(
        parser.add_argument_group("what to train"),
        "set a component parameter, e.g. --set backbone.weights=none (repeatable)",
    )
    how = parser.add_argument_group("how to run")
    how.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help="distribution strategy (default: auto)",
    )
    how.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="float precision (default: auto: mixed_float16 on tensor-core GPUs)",
    )
    how.add_argument(
        "--feature-cache-dir",
        type=Path,
        metavar="DIR",
        help="where cached features persist (default: ~/.cache/zoo/features)",
    )
    how.add_argument(
        "--feature-cache-memory",
        metavar="SIZE",
        default="2GB",
        help="features kept in memory, e.g. 512MB; the rest is read from disk (default: 2GB)",
    )
    how.add_argument(
        "--feature-cache-max",
        metavar="SIZE",
        help="the most the feature cache folder may hold; least recently used features "
        "not in use are removed beyond it (default: [cache] max_size of a registry file, "
        "else 10GB)",
    )
    how.add_argument(
        "--output",
        type=Path,
        default=Path("runs"),
        metavar="DIR",
        help="where run directories go (default: ./runs)",
    )
    how.add_argument(
        "--dry-run", action="store_true", help="check and print the model summary, then stop"
    )
    how.add_argument(
        "--find-lr",
        action="store_true",
        help="instead of training, find a learning rate: the range test (rates rising from "
        "1e-7 to 10 over up to 100 batches, on cached features when the backbone is frozen), "
        "its figure and a suggested rate, under OUTPUT/lr-find",
    )
    how.add_argument(
        "--no-test",
        action="store_true",
        help="leave the test split unscored (to choose between runs on validation alone, "
        "as zoo tune's trials do); the run's metrics then hold no test",
    )
    how.add_argument(
        "--json", action="store_true", help="print the run's metrics as JSON at the end"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from zoo.downloads import readiness
    from zoo.runconfig import resolve_run
    from zoo.runtime import runners
    from zoo.storage import runs
    from zoo.train.engine import EngineOptions
    from zoo.train.engine import run as run_experiment

    if args.find_lr and args.dry_run:
        raise ZooError(
            "--find-lr trains for up to 100 batches; --dry-run stops before any.",
            expected="one of --find-lr and --dry-run",
            fix="drop one of them",
            got="--find-lr --dry-run",
        )
    registry = registry_from(args)
    settings = {s.name: getattr(args, s.name) for s in SETTINGS}
    if args.resume is not None:
        _check_resume(args, settings)
        record = runs.read_run(args.resume)
        record.require(runs.CONFIG, "--resume needs")
        if settings["track"] is not None:  # the observers this resume tells instead
            record = dataclasses.replace(record, config={**record.config, "track": args.track})
        resolved = readiness.from_run(registry, record)  # its values held to our folders
    else:
        resolved = resolve_run(
            registry, args.names, recipe=args.recipe, settings=settings, sets=args.sets
        )
    runners.check(resolved.config.runtime, resolved.config.runtime_precision)  # before loading
    options = EngineOptions(
        strategy=args.strategy,
        precision=args.precision,
        cache_dir=args.feature_cache_dir,
        cache_memory=parse_size(args.feature_cache_memory),
        cache_max=cache_max_size(registry, args.feature_cache_max, "--feature-cache-max"),
        test=not args.no_test,
    )
    result = run_experiment(
        resolved,
        output=args.output,
        dry_run=args.dry_run,
        find_lr=args.find_lr,
        command=["zoo", *sys.argv[1:]],
        options=options,
        resume=args.resume,
    )
    if args.json:
        console.print_json(
            {"run_dir": result.run_dir, "parameters": result.parameters, **result.metrics}
        )
    elif args.find_lr:
        from zoo.console import reports

        reports.learning_rate_found(result.metrics["lr_find"])
    return 0


def _check_resume(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    if args.find_lr:
        raise ZooError(
            "--resume continues training; --find-lr does not train.",
            expected="zoo run --resume RUN_DIR, or --find-lr on DATASET BACKBONE HEAD",
            fix="drop --find-lr, or name the components instead of --resume",
            got="--find-lr",
        )
    # Which observers are told is how it runs, not what: a resume may change them.
    given = {name: value for name, value in settings.items() if name != "track"}
    changed = [BY_NAME[name].flag for name, value in given.items() if value is not None]
    changed += ["names"] * bool(args.names) + ["--recipe"] * bool(args.recipe)
    changed += ["--set"] * bool(args.sets)
    if changed:
        raise ZooError(
            "--resume continues a run with its own configuration; it takes no "
            f"{', '.join(changed)}.",
            expected="zoo run --resume RUN_DIR (plus how-to-run options such as --strategy)",
            fix="drop those options, or start a new run with them",
            got=" ".join(changed),
        )
