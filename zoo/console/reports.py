"""Reports on the terminal: the data summary before training, evaluation reports,
comparisons of runs, predictions and exports.

The second display module beside :mod:`zoo.console`, whose streams, tables and
warnings it uses: tables go to ``console.out`` (stdout, or stderr under ``--json``),
warnings and status lines to stderr.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rich.table import Table

from zoo import console
from zoo.console import _escape, _table
from zoo.data.summary import DataSummary
from zoo.model.scoring import Evaluation

#: Classes listed in the data summary's table; the rest are counted in one row.
SHOWN_CLASSES = 30
#: Unreadable files named on the screen; metrics.json records them all.
SHOWN_UNREADABLE = 5
#: Misclassified examples listed on the screen; the report keeps more.
SHOWN_MISTAKES = 10

# The data summary ------------------------------------------------------------------------


def data_summary(dataset: str, summary: DataSummary) -> None:
    """Classes and examples per split (and per class, when known), then the warnings."""
    splits = list(summary.sizes)
    table = _table(f"data: {_escape(dataset)}, {len(summary.class_names)} classes")
    table.add_column("class", overflow="fold")
    for split in splits:
        table.add_column(split, justify="right")
    if summary.class_counts:
        for label, name in enumerate(summary.class_names[:SHOWN_CLASSES]):
            counts = [summary.class_counts.get(split) for split in splits]
            table.add_row(_escape(name), *(f"{c[label]:,}" if c else "-" for c in counts))
        hidden = len(summary.class_names) - SHOWN_CLASSES
        if hidden > 0:
            table.add_row(f"... {hidden} more classes (in metrics.json)", *[""] * len(splits))
    else:
        console.status(f"classes: {', '.join(summary.class_names)}")
    table.add_row("total", *(f"{summary.sizes[s]:,}" for s in splits), style="bold")
    points = [summary.points_per_example(s) for s in splits]
    table.add_row("one example is", *(_points(p) if p else "-" for p in points))
    console.out.print(table)
    for text in summary.warnings:
        console.warning(text)
    if summary.skipped:
        _unreadable(dataset, summary)


def _points(points: float) -> str:
    """``1.0 points``, and under one point two significant digits (``0.025 points``), so a
    large split does not read as ``0.0``."""
    if points >= 1:
        return f"{points:.1f} points"
    decimals = 1 - math.floor(math.log10(points))
    return f"{points:.{decimals}f} points"


def _unreadable(dataset: str, summary: DataSummary) -> None:
    named = list(summary.unreadable.items())
    where = " (all are listed in the run's metrics.json)" if named else ""
    files = "file" if summary.skipped == 1 else "files"
    console.warning(f"dataset '{dataset}': skipped {summary.skipped} unreadable {files}{where}")
    for file, reason in named[:SHOWN_UNREADABLE]:
        console.status(f"  {file}: {reason}")
    if len(named) > SHOWN_UNREADABLE:
        console.status(f"  ... and {len(named) - SHOWN_UNREADABLE} more")


# Evaluation reports ----------------------------------------------------------------------


def evaluation(report: Evaluation) -> None:
    """The confusion matrix, the scores per class, and the most confidently wrong."""
    accuracy = report.accuracy
    shown = f", accuracy {accuracy:.4f}" if accuracy is not None else ""
    console.out.print(f"evaluation: {_escape(report.name)} ({report.examples} examples{shown})")
    console.out.print(_confusion(report))
    console.out.print(_per_class(report))
    if report.mistakes:
        console.out.print(_mistakes(report))
    if report.figure:
        console.out.print(f"confusion matrix: {_escape(_shown(report.figure))}")


def _shown(path: str) -> str:
    """``path`` as short as it reads: relative to the working directory when under it
    (a long absolute path would fold across the table's lines)."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _confusion(report: Evaluation) -> Table:
    table = _table("confusion matrix")
    table.add_column("true \\ predicted", overflow="fold")
    for name in report.class_names:
        table.add_column(_escape(name), justify="right")
    for name, row in zip(report.class_names, report.confusion, strict=True):
        table.add_row(_escape(name), *(str(n) for n in row))
    return table


def _per_class(report: Evaluation) -> Table:
    table = _table("per class")
    table.add_column("class", overflow="fold")
    for column in ("precision", "recall", "F1", "examples"):
        table.add_column(column, justify="right")
    for c in report.classes:
        scores = (_fraction(c.precision), _fraction(c.recall), _fraction(c.f1))
        table.add_row(_escape(c.name), *scores, str(c.support))
    macro = (_fraction(report.macro(score)) for score in ("precision", "recall", "f1"))
    table.add_row("mean over classes", *macro, str(report.examples), style="bold")
    return table


def _mistakes(report: Evaluation) -> Table:
    shown = report.mistakes[:SHOWN_MISTAKES]
    table = _table(f"most confidently wrong ({len(shown)} of {report.misclassified})")
    table.add_column("file" if shown[0].file is not None else "example", overflow="fold")
    for column in ("true class", "predicted", "probability", "p(true class)"):
        table.add_column(column, justify="right" if column.startswith("p") else "left")
    for m in shown:
        example = _shown(m.file) if m.file is not None else f"#{m.index}"
        probabilities = (f"{m.probability:.4f}", f"{m.true_probability:.4f}")
        table.add_row(_escape(example), _escape(m.true), _escape(m.predicted), *probabilities)
    return table


def evaluation_problems(errors: Sequence[Mapping[str, str]]) -> None:
    """Files of an evaluation folder that could not be read."""
    if not errors:
        return
    console.warning(f"skipped {len(errors)} unreadable {'file' if len(errors) == 1 else 'files'}:")
    for row in errors:
        console.status(f"  {row['file']}: {row['error']}")


# Comparisons -----------------------------------------------------------------------------

#: Characters of a difference shown in its column, and differences shown per run (the
#: JSON has them all, whole).
SHOWN_VALUE = 32
SHOWN_DIFFERENCES = 6


def comparison(data: Mapping[str, Any]) -> None:
    """One table, a run per row, best first: what sets each run apart, what it reached
    and how long it took; then each label's run directory, and the warnings."""
    found = list(data["runs"])
    console.out.print(_comparison_table(data, found))
    shared = _shared_components(found)
    if shared:
        console.out.print(f"every run: {_escape(shared)}")
    for run in found:
        console.out.print(f"{_escape(run['label'])}: {_escape(run['path'])}")
    for text in data.get("warnings", []):
        console.warning(text)


def _comparison_table(data: Mapping[str, Any], found: Sequence[Mapping[str, Any]]) -> Table:
    columns = list(_comparison_columns(found, data.get("target"), data.get("on")))
    table = _table(_comparison_title(data, found))
    for header, _ in columns:
        left = header in ("run", "status", "differs")
        table.add_column(header, justify="left" if left else "right", overflow="fold")
    for run in found:
        table.add_row(*(_escape(str(cell(run))) for _, cell in columns))
    return table


def _comparison_title(data: Mapping[str, Any], found: Sequence[Mapping[str, Any]]) -> str:
    sort = data["sort"]
    runs = f"{len(found)} run{'s' if len(found) != 1 else ''}"
    if sort["key"] == "given":
        return f"{runs}, in the order given"
    if sort["key"] == "held-out":
        return f"{runs}, ranked by accuracy on {_escape(data['on'])}"
    order = "best first" if sort["best_first"] else "lowest first"
    return f"{runs}, ranked by {sort['by']} ({order})"


def _comparison_columns(
    found: Sequence[Mapping[str, Any]], target: float | None, on: str | None
) -> Iterable[tuple[str, Callable[[Mapping[str, Any]], Any]]]:
    yield "#", lambda r: r["rank"]
    yield "run", lambda r: r["label"]
    if any(r["status"] != "completed" or r["resumed"] for r in found):
        yield "status", _status_cell
    if any(_differences(r) for r in found):
        yield "differs", lambda r: "\n".join(_differences(r)) or "-"
    if on:
        yield "held-out acc", lambda r: _fraction((r["held_out"] or {}).get("accuracy"))
        yield "images", lambda r: _count((r["held_out"] or {}).get("examples"))
    yield "best val (epoch)", _best_cell
    yield "test acc", lambda r: _fraction(r["test_accuracy"])
    if not on:  # room for the held-out scores; the JSON keeps the epochs to the target
        reach = f"epochs to {target:.4f}" if target is not None else "epochs to target"
        yield reach, _reach_cell
    yield "epochs", _epochs_cell
    yield "trainable params", _params_cell
    yield "time", lambda r: _seconds(r["total_seconds"] or None)


def _differences(run: Mapping[str, Any]) -> list[str]:
    """``lr=0.01``, ``fine-tuned from conv5``: a run's differences that its label does
    not say, each cut to :data:`SHOWN_VALUE` characters."""
    texts = [t for t in run["differences"] if f" {t} " not in f" {run['label']} "]
    hidden = len(texts) - SHOWN_DIFFERENCES
    shown = [_elided(t, SHOWN_VALUE) for t in texts[: SHOWN_DIFFERENCES - (hidden > 0)]]
    return shown + ([f"{hidden + 1} more (--json)"] if hidden > 0 else [])


def _elided(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shared_components(found: Sequence[Mapping[str, Any]]) -> str:
    """``dataset shapes, head gap_sigmoid``: the components every run shares."""
    shared = [
        f"{kind} {found[0][kind]}"
        for kind in ("dataset", "backbone", "head")
        if found[0][kind] and all(r[kind] == found[0][kind] for r in found)
    ]
    return ", ".join(shared)


def _status_cell(run: Mapping[str, Any]) -> str:
    resumed = run["resumed"]
    return run["status"] + (f", resumed {_times(resumed)}" if resumed else "")


def _epochs_cell(run: Mapping[str, Any]) -> str:
    """``5``, ``3 of 5`` (stopped early), ``5 + 3 fine-tune`` with a second stage."""

    def count(stage: Mapping[str, Any]) -> str:
        done, planned = stage["done"], stage["planned"]
        return str(done) if planned in (None, done) else f"{done} of {planned}"

    stages = run["stages"]
    cells = [count(stages["head"])] if "head" in stages else []
    if "fine_tune" in stages:
        cells.append(f"{count(stages['fine_tune'])} fine-tune")
    return " + ".join(cells)


def _params_cell(run: Mapping[str, Any]) -> str:
    """Trainable parameters: ``65``; ``65, then 9,410`` when fine-tuning unfroze more."""
    head = _count(run["parameters"].get("trainable"))
    tuned = run["fine_tune_parameters"].get("trainable")
    return f"{head}, then {tuned:,}" if tuned is not None else head


def _best_cell(run: Mapping[str, Any]) -> str:
    if run["best_val_accuracy"] is None:
        return "-"
    chance = " chance" if run["at_chance"] else ""
    return f"{run['best_val_accuracy']:.4f} ({run['best_epoch']}){chance}"


def _reach_cell(run: Mapping[str, Any]) -> str:
    return "never" if run["epochs_to_target"] is None else str(run["epochs_to_target"])


def _times(count: int) -> str:
    return {0: "-", 1: "once"}.get(count, f"{count} times")


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def figure_written(path: Any) -> None:
    console.out.print(f"figure: {_escape(path)}")


# Predictions and exports ----------------------------------------------------------------


def exported(fmt: str, path: Any, needs: Sequence[str]) -> None:
    """Where the export went, and the packages that load it."""
    console.out.print(f"exported ({_escape(fmt)}): {_escape(path)}")
    console.out.print(f"loads with: {_escape(', '.join(needs))} installed")


def export_check(folder: Any, check: Mapping[str, Any], runtime: str) -> None:
    """The check of an export by its runtime (``export.json``), one row per measure."""
    quantization = check["quantization"] or "none (float32)"
    table = _table(f"{_escape(check['format'])} export checked by {_escape(runtime)}")
    table.add_column("measure")
    table.add_column("value", overflow="fold")
    accuracy = check["accuracy_keras"], check["accuracy_export"]
    rows = [
        ("folder", _escape(folder)),
        ("quantization", _escape(quantization)),
        ("checked on", _escape(check["source"])),
        ("file size", _size(check["size_bytes"])),
        ("latency, batch 1", f"{check['latency_ms']:.2f} ms per image (median)"),
        ("top-1 agreement", f"{check['agreement']:.2%}"),
        ("largest difference", f"{check['max_difference']:.2g}"),
    ]
    if None not in accuracy:
        rows.append(("accuracy", f"{accuracy[0]:.2%} Keras, {accuracy[1]:.2%} export"))
    if check.get("calibration"):
        rows.append(("calibrated on", _escape(check["calibration"])))
    verdict = "passed" if check["passed"] else "accepted" if check["accepted"] else "FAILED"
    rows.append(("check", f"{verdict}: {_escape(check['reason'])}"))
    for row in rows:
        table.add_row(*row)
    console.out.print(table)


def _size(count: int) -> str:
    return f"{count / 1e6:.2f} MB" if count >= 1e5 else f"{count / 1e3:.1f} kB"


def predictions(
    predicted: Sequence[Mapping[str, Any]], errors: Sequence[Mapping[str, str]], top_k: int
) -> None:
    """One row per file: its class and probability, and the top ``top_k`` if over 1."""
    table = _table("predictions")
    table.add_column("file", overflow="fold")
    table.add_column("class")
    table.add_column("probability", justify="right")
    if top_k > 1:
        table.add_column(f"top {top_k}", overflow="fold")
    for row in predicted:
        cells = [_escape(row["file"]), _escape(row["class"]), f"{row['probability']:.4f}"]
        if top_k > 1:
            cells.append(", ".join(_ranked(t) for t in row["top_k"]))
        table.add_row(*cells)
    if predicted:
        console.out.print(table)
    if errors:
        failed = _table("unreadable")
        failed.add_column("file", overflow="fold")
        failed.add_column("error", overflow="fold")
        for row in errors:
            failed.add_row(_escape(row["file"]), _escape(row["error"]))
        console.out.print(failed)
    console.status(f"predicted {len(predicted)} files; {len(errors)} could not be read")


def _ranked(entry: Mapping[str, Any]) -> str:
    return f"{_escape(entry['class'])} {entry['probability']:.4f}"


def learning_rate_found(found: Mapping[str, Any]) -> None:
    """``zoo run --find-lr``'s answer: the suggested rate (stdout) and where its figure is."""
    suggested = found["suggested_learning_rate"]
    if suggested is None:
        console.out.print("no rate to suggest: the loss diverged within the first batches")
    else:
        rate = f"{suggested:.2g}"
        console.out.print(f"suggested learning rate: {rate} (--learning-rate {rate})")
    console.err.print(_escape(f"{found['batches']} batches; {found['stopped']}"))
    console.err.print(_escape(f"figure: {found['figure']}"))
