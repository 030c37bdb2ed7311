"""``zoo compare RUN_DIR ...``: runs ranked in one table, and a figure of their curves."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import console
from zoo.commands._common import registry_from
from zoo.console import reports
from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.registry import Registry
    from zoo.storage.runs import RunRecord

POSITION = 50


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "compare",
        parents=[common],
        help="compare runs: one table ranking them, and a figure of their curves",
        description="Compare run directories: one table, a run per row, best first by "
        "--sort, with what sets each run apart; and a PNG figure of their training "
        "curves. With --on FOLDER, each run's model is scored on labelled images it "
        "never saw (as zoo evaluate RUN FOLDER scores it) and the runs are ranked by "
        "that accuracy. Exit code 1 when some of FOLDER's files could not be read.",
        epilog="examples: zoo compare runs/* --sort test\n"
        "  zoo compare runs/* --on holdout/ --json\n"
        "  zoo compare runs/*-small_cnn-* runs/*-resnet50-* --label scratch --label transfer",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_ = parser.add_argument
    add_(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="run directories; a zoo tune study's folder (runs/tune/STUDY) stands for its runs",
    )
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
        "--overwrite",
        action="store_true",
        help="replace the figure if it exists (by default zoo compare refuses)",
    )
    add_(
        "--sort",
        metavar="KEY",
        help="rank runs by: best (validation accuracy; the default), final, test, target "
        "(epochs to reach it), time, label, given (the order given), held-out (with --on; "
        "its default)",
    )
    add_(
        "--on",
        type=Path,
        metavar="FOLDER",
        help="rank the runs on FOLDER: labelled images, one subfolder per class",
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
    args.run_dirs = _with_studies(args.run_dirs)
    _check_labels(args.labels, len(args.run_dirs))
    data = show(
        args.run_dirs,
        args.figure,
        as_json=args.json,
        target=args.target,
        labels=args.labels,
        sort=args.sort,
        on=args.on,
        overwrite=args.overwrite,
        registry=(lambda: registry_from(args)) if args.on else None,
    )
    return 1 if any((run["held_out"] or {}).get("unreadable") for run in data["runs"]) else 0


def _with_studies(paths: list[Path]) -> list[Path]:
    """Each ``zoo tune`` study folder given stands for its trials' runs and its winner's."""
    from zoo.tune.folders import is_study, study_runs

    return [run for path in paths for run in (study_runs(path) if is_study(path) else [path])]


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


def _check_figure(figure: Path, overwrite: bool) -> None:
    if figure.exists() and not overwrite:
        raise ZooError(
            f"{figure} already exists; zoo compare does not overwrite it unless told.",
            expected="a --figure path that does not exist yet, or --overwrite",
            fix="pass --overwrite to replace it, or another --figure PATH",
            got=str(figure),
        )


def show(
    run_dirs: list[Path],
    figure: Path,
    *,
    as_json: bool,
    target: float | None = None,
    labels: list[str] | None = None,
    sort: str | None = "given",
    on: Path | None = None,
    overwrite: bool = False,
    registry: Callable[[], Registry] | None = None,
) -> dict[str, Any]:
    """Compare ``run_dirs``, rank them (on the folder ``on``, if given), draw the figure,
    print the table (or JSON); return the data.

    Args:
        sort: The ``--sort`` key; ``None`` for its default (``zoo demo`` keeps its order).
        registry: Loads the plugins, whose layers the runs' models may use (needed with
            ``on``).
    """
    from zoo.results import ranking
    from zoo.results.compare import compare
    from zoo.results.curves import plot

    key = ranking.sort_key(sort, held_out=on is not None)
    _check_figure(figure, overwrite)
    if on is not None:
        ranking.check_folder(on)
    records = _records(run_dirs)
    data = compare(records, target, labels or [])
    scores: list[Any] = [None] * len(records)
    if on is not None:
        scores = _held_out(records, data, on, registry() if registry else None)
    for run, score in zip(data["runs"], scores, strict=True):
        run["held_out"] = score
    drawn = plot(records, data, figure)  # in the order given, as the records are
    sorting = {"key": key.name, "by": key.describes, "best_first": key.higher_first}
    data = {"sort": sorting, "on": str(on) if on else None, **data, "figure": str(drawn)}
    data["runs"] = ranking.ranked(data["runs"], key)
    if as_json:
        console.print_json(data)
        for text in data["warnings"]:
            console.warning(text)
    else:
        reports.comparison(data)
        reports.figure_written(data["figure"])
    return data


def _records(run_dirs: list[Path]) -> list[RunRecord]:
    """The runs, each with an intact config.json and metrics.json."""
    from zoo.storage.runs import CONFIG, METRICS, RESTORE, read_run

    records = [read_run(path) for path in run_dirs]
    for record in records:
        for name in (CONFIG, METRICS):
            leave_out = f"{RESTORE[name]}; or leave {record.path} out of the comparison"
            record.require(name, "comparing runs needs", fix=leave_out)
    return records


def _held_out(
    records: list[RunRecord], data: dict[str, Any], folder: Path, registry: Registry | None
) -> list[dict[str, Any] | None]:
    """Each run's scores on ``folder``; what to keep in mind joins the warnings."""
    from zoo.results import ranking

    labels = [run["label"] for run in data["runs"]]
    scores, warnings = ranking.on_folder(
        records,
        labels,
        folder,
        registry,
        lambda label: console.status(f"scoring {label} on {folder}"),
    )
    data["warnings"] += warnings
    return scores
