"""``zoo compare RUN_DIR ...``: runs side by side, and a figure of their curves."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zoo import console
from zoo.console import reports
from zoo.errors import ZooError

POSITION = 50


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "compare",
        parents=[common],
        help="compare runs: a table and a figure of their curves",
        description="Compare run directories side by side and plot their training curves.",
        epilog="example: zoo compare runs/*-small_cnn-* runs/*-resnet50-* --target 0.9 "
        "--label scratch --label transfer",
    )
    add_ = parser.add_argument
    add_("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories")
    add_(
        "--target",
        type=float,
        help="report the first epoch reaching this validation accuracy "
        "(default: the lowest of the runs' best, leaving out runs at chance)",
    )
    add_(
        "--figure",
        type=Path,
        default=Path("comparison.png"),
        metavar="PATH",
        help="where the PNG figure goes (default: ./comparison.png)",
    )
    add_(
        "--label",
        dest="labels",
        action="append",
        default=[],
        metavar="NAME",
        help="a short name for the next run, in order (repeatable; default: what tells "
        "the runs apart, such as the backbone or a setting)",
    )
    add_("--json", action="store_true", help="print the table's data as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.target is not None and not 0 <= args.target <= 1:
        raise ZooError(
            "--target is a validation accuracy, between 0 and 1.",
            expected="a number from 0 to 1, for example 0.9",
            fix="pass --target 0.9 (or leave it out)",
            got=args.target,
        )
    _check_labels(args.labels, len(args.run_dirs))
    show(args.run_dirs, args.figure, as_json=args.json, target=args.target, labels=args.labels)
    return 0


def _check_labels(labels: list[str], runs: int) -> None:
    if len(labels) > runs:
        raise ZooError(
            f"{len(labels)} --label names for {runs} runs.",
            expected="at most one --label per run, in the order of the run directories",
            fix="drop the extra --label names",
            got=labels,
        )
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated or not all(label.strip() for label in labels):
        raise ZooError(
            "each --label names one run: labels must be distinct and not empty.",
            expected="a different short name per run, such as --label scratch --label transfer",
            fix="give each run its own --label",
            got=labels,
        )


def show(
    run_dirs: list[Path],
    figure: Path,
    *,
    as_json: bool,
    target: float | None = None,
    labels: list[str] | None = None,
) -> dict[str, Any]:
    """Compare ``run_dirs``, draw the figure, print the table (or JSON); return the data."""
    from zoo.results.compare import compare, plot
    from zoo.storage.runs import CONFIG, METRICS, RESTORE, read_run

    records = [read_run(path) for path in run_dirs]
    for record in records:
        for name in (CONFIG, METRICS):
            leave_out = f"{RESTORE[name]}; or leave {record.path} out of the comparison"
            record.require(name, "comparing runs needs", fix=leave_out)
    data = compare(records, target, labels or [])
    data["figure"] = str(plot(records, data, figure))
    if as_json:
        console.print_json(data)
        for text in data["warnings"]:
            console.warning(text)
    else:
        reports.comparison(data)
        reports.figure_written(data["figure"])
    return data
