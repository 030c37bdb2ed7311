"""``zoo evaluate RUN_DIR [FOLDER]``: how a trained run does, class by class, and where."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zoo import console
from zoo.commands._common import checked, registry_from
from zoo.console import reports

POSITION = 55


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "evaluate",
        parents=[common],
        help="evaluate a trained run: confusion matrix, per-class scores, worst mistakes",
        description="Evaluate a run's model on its test split (rebuilt from the run's "
        "dataset), or on FOLDER: new labelled images, one subfolder per class named like "
        "the run's classes. Shows the confusion matrix (and writes it as a PNG), each "
        "class's precision, recall and F1, and the most confidently wrong files. Exit "
        "code 1 when some files could not be read.",
        epilog="examples: zoo evaluate runs/RUN; zoo evaluate runs/RUN holdout/ --json",
    )
    add_ = parser.add_argument
    add_("run_dir", type=Path, metavar="RUN_DIR", help="a run directory")
    add_(
        "folder",
        nargs="?",
        type=Path,
        metavar="FOLDER",
        help="labelled images, one subfolder per class (default: the run's test split)",
    )
    add_(
        "--output",
        type=Path,
        metavar="DIR",
        help="where the confusion matrix PNG goes (default: the run directory)",
    )
    add_("--batch-size", type=int, help="images per batch (default: the run's)")
    add_("--json", action="store_true", help="print the evaluation as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from zoo.results import evaluate
    from zoo.results.predict import load_trained

    checked("--batch-size", args.batch_size)
    registry = registry_from(args)  # the dataset, and the plugins' custom layers
    if args.folder is None:
        evaluate.test_split_record(args.run_dir)  # at once, before the model loads
    trained = load_trained(args.run_dir)
    for text in trained.warnings:
        console.warning(text)
    batch_size = args.batch_size or trained.batch_size
    output = args.output or args.run_dir
    what = f"evaluating on {args.folder}" if args.folder else "evaluating on the test split"
    with console.TaskProgress(what, None) as progress:
        if args.folder is None:
            report = evaluate.on_test_split(
                registry, trained, batch_size=batch_size, output=output, on_batch=progress.advance
            )
        else:
            report = evaluate.on_folder(
                trained,
                args.folder,
                batch_size=batch_size,
                output=output,
                on_batch=progress.advance,
            )
    for text in report.warnings:
        console.warning(text)
    if args.json:
        console.print_json(
            {
                "run_dir": str(args.run_dir),
                "evaluation": report.evaluation.to_dict(),
                "errors": report.errors,
                "warnings": report.warnings,
            }
        )
    else:
        reports.evaluation(report.evaluation)
    reports.evaluation_problems(report.errors)
    return 1 if report.errors else 0
