"""Comparing runs: a table of what each run was and achieved, and a figure of its curves.

Reads run directories only (``config.json``, ``metrics.json``); TensorFlow is never
imported. Runs may differ in length, may have failed, stopped or been resumed: each is
shown with what it recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.components import KINDS
from zoo.errors import ZooError
from zoo.runs import RunRecord, finite_number
from zoo.settings import SETTINGS

#: Closer than this to the target counts as reaching it (the default target is one of
#: the recorded values, which must reach itself).
_TOLERANCE = 1e-9
#: How a warning says what became of a run that did not complete.
_STATES = {
    "failed": "failed",
    "interrupted": "was interrupted (`zoo run` can resume it)",
    "running": "is still running, or was killed",
    "unknown": "has no metrics.json yet (still starting, or killed)",
}


def compare(records: Sequence[RunRecord], target: float | None = None) -> dict[str, Any]:
    """The comparison of ``records`` as plain data (what ``--json`` prints).

    Args:
        records: The runs, as :func:`zoo.runs.read_run` reads them.
        target: The validation accuracy whose first epoch is reported; by default the
            lowest of the runs' best validation accuracies, so every run with a
            validation accuracy reaches it.
    """
    if target is None:
        target = default_target(records)
    labels = run_labels(records)
    differs = differing_settings(records)
    return {
        "target": target,
        "runs": [
            summarize(r, label, target, d)
            for r, label, d in zip(records, labels, differs, strict=True)
        ],
        "warnings": mismatch_warnings(records, labels),
    }


def default_target(records: Sequence[RunRecord]) -> float | None:
    """The lowest of the runs' best validation accuracies (``None``: no run has one)."""
    bests = [max(values) for values in (r.series("val_accuracy")[1] for r in records) if values]
    return min(bests) if bests else None


def summarize(
    record: RunRecord, label: str, target: float | None, differs: Mapping[str, Any]
) -> dict[str, Any]:
    """One run's row of the comparison."""
    epochs, val = record.series("val_accuracy")
    best = max(range(len(val)), key=val.__getitem__) if val else None
    timings = dict(record.metrics.get("timings") or {})
    return {
        "label": label,
        "path": str(record.path),
        "status": record.status,
        "error": record.metrics.get("error"),
        **{kind: record.config.get(kind, {}).get("name") for kind in KINDS},
        "differs": dict(differs),
        "parameters": dict(record.metrics.get("parameters") or {}),
        "epochs": len(record.history),
        "planned_epochs": record.config.get("epochs"),
        "final_val_accuracy": val[-1] if val else None,
        "best_val_accuracy": val[best] if best is not None else None,
        "best_epoch": epochs[best] if best is not None else None,
        "test_accuracy": (record.metrics.get("test") or {}).get("accuracy"),
        "epochs_to_target": epochs_to(record, target),
        "stage_starts": record.stage_starts(),
        "resumed": len(record.metrics.get("resumed") or []),
        "timings": timings,
        "total_seconds": round(sum(v for v in timings.values() if finite_number(v)), 3),
    }


def epochs_to(record: RunRecord, target: float | None) -> int | None:
    """The first epoch whose validation accuracy reaches ``target`` (``None``: never)."""
    if target is None:
        return None
    epochs, values = record.series("val_accuracy")
    return next((e for e, v in zip(epochs, values, strict=True) if v >= target - _TOLERANCE), None)


def flat_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """``{"dataset": "shapes", "dataset.classes": "...", "epochs": 7, ...}``."""
    flat: dict[str, Any] = {}
    for kind in KINDS:
        choice = config.get(kind) or {}
        flat[kind] = choice.get("name")
        for key, value in (choice.get("params") or {}).items():
            flat[f"{kind}.{key}"] = value
    # A setting an older zoo did not write ran with its default.
    flat.update({s.name: config.get(s.name, s.default) for s in SETTINGS})
    return flat


def differing_settings(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """Per run, the settings whose values are not the same in every run."""
    flats = [flat_settings(r.config) for r in records]
    keys = list(dict.fromkeys(k for flat in flats for k in flat))
    differ = [k for k in keys if len({repr(flat.get(k)) for flat in flats}) > 1]
    return [{k: flat.get(k) for k in differ} for flat in flats]


def run_labels(records: Sequence[RunRecord]) -> list[str]:
    """Short unique names: the recipes, else the backbones, else the directory names."""
    candidates: tuple[list[str | None], ...] = (
        [r.config.get("recipe") for r in records],
        [(r.config.get("backbone") or {}).get("name") for r in records],
        [r.path.name for r in records],
    )
    for labels in candidates:
        named = [label for label in labels if label]
        if len(named) == len(labels) and len(set(named)) == len(named):
            return named
    return [f"{r.path.name} #{i}" for i, r in enumerate(records, 1)]


def mismatch_warnings(records: Sequence[RunRecord], labels: Sequence[str]) -> list[str]:
    """What makes the runs less comparable: different data, failures, unfinished runs."""
    warnings = []
    data = {repr(_data_of(r)) for r in records}
    if len(data) > 1:
        warnings.append(
            "the runs used different data (dataset, its parameters or image size); "
            "their accuracies are not directly comparable"
        )
    for record, label in zip(records, labels, strict=True):
        if record.status == "completed":
            continue
        state = _STATES.get(record.status, f"has status '{record.status}'")
        reason = f": {record.metrics['error']}" if record.metrics.get("error") else ""
        shown = (
            f"its curves end at epoch {record.history[-1]['epoch']}"
            if record.history
            else "it recorded no epochs"
        )
        warnings.append(f"run {label} {state}{reason}; {shown}")
    return warnings


def _data_of(record: RunRecord) -> tuple[Any, ...]:
    dataset = record.config.get("dataset") or {}
    return (dataset.get("name"), dataset.get("params"), record.config.get("image_size"))


def plot(records: Sequence[RunRecord], comparison: Mapping[str, Any], path: Path) -> Path:
    """Training and validation accuracy and loss per epoch of every run, as a PNG.

    Solid lines are validation, dashed lines training; a dotted vertical line marks
    where a run's fine-tuning stage starts, a grey line the target accuracy.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    # A bare Figure draws with the Agg canvas: no display, no pyplot state.
    figure = Figure(figsize=(12, 4.8), dpi=100, layout="constrained")
    axes = dict(zip(("accuracy", "loss"), figure.subplots(1, 2), strict=True))
    for i, (record, row) in enumerate(zip(records, comparison["runs"], strict=True)):
        notes = [row["status"]] if row["status"] != "completed" else []
        notes += ["resumed"] if row["resumed"] else []
        name = row["label"] + (f" ({', '.join(notes)})" if notes else "")
        _plot_run(axes, record, name, color=f"C{i}")
    if comparison.get("target") is not None:
        target = comparison["target"]
        axes["accuracy"].axhline(
            target, color="grey", linestyle=":", linewidth=1, label=f"target {target:.4f}"
        )
    for metric, ax in axes.items():
        ax.set_title(f"training (dashed) and validation (solid) {metric}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    except OSError as exc:
        raise ZooError(
            f"cannot write the figure {path}: {exc.strerror}.",
            expected="a path zoo can write a PNG to",
            fix="pass another --figure PATH",
            got=str(path),
        ) from None
    return path


def _plot_run(axes: Mapping[str, Any], record: RunRecord, name: str, color: str) -> None:
    for metric, ax in axes.items():
        for key, style, suffix in ((metric, "--", "train"), (f"val_{metric}", "-", "validation")):
            epochs, values = record.series(key)
            if epochs:
                label = f"{name} {suffix}"
                ax.plot(epochs, values, style, color=color, marker="o", markersize=3, label=label)
        start = record.stage_starts().get("fine_tune")
        if start is not None:
            ax.axvline(start - 0.5, color=color, linestyle=":", label=f"{name} fine-tuning")
