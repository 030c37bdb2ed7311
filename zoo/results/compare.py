"""Comparing runs: a table of what each run was and achieved, and a figure of its curves.

Reads run directories only (``config.json``, ``metrics.json``); TensorFlow is never
imported. Runs may differ in length, may have failed, stopped or been resumed: each is
shown with what it recorded.

Each run gets a short label: the one given (``--label``), else its recipe, else the
fewest of the settings that differ between the runs which tell them apart
(``resnet50 learning_rate=0.01``). The default target accuracy ignores runs that stayed
at chance, which would make it meaningless.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.components import KINDS
from zoo.config.settings import SETTINGS
from zoo.model.scoring import write_figure
from zoo.storage.runs import RunRecord, finite_number

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Closer than this to the target counts as reaching it (the default target is one of
#: the recorded values, which must reach itself).
_TOLERANCE = 1e-9
#: A run whose best validation accuracy is within this of chance learned nothing.
CHANCE_MARGIN = 0.05
#: Settings shown bare in labels: their values are names (``resnet50``, not ``backbone=``).
_NAMED = ("recipe", *KINDS)
#: How a warning says what became of a run that did not complete.
_STATES = {
    "failed": "failed",
    "interrupted": "was interrupted (`zoo run` can resume it)",
    "running": "is still running, or was killed",
    "unknown": "has no metrics.json yet (still starting, or killed)",
}


def compare(
    records: Sequence[RunRecord], target: float | None = None, labels: Sequence[str] = ()
) -> dict[str, Any]:
    """The comparison of ``records`` as plain data (what ``--json`` prints).

    Args:
        records: The runs, as :func:`zoo.storage.runs.read_run` reads them.
        target: The validation accuracy whose first epoch is reported; by default the
            lowest of the best validation accuracies of the runs above chance, so every
            such run reaches it.
        labels: Names for the first runs (``--label``); the others get default labels.
    """
    if target is None:
        target = default_target(records)
    differs = differing_settings(records)
    names = run_labels(records, labels)
    return {
        "target": target,
        "runs": [
            summarize(r, label, target, d)
            for r, label, d in zip(records, names, differs, strict=True)
        ],
        "warnings": mismatch_warnings(records, names),
    }


def best_val_accuracy(record: RunRecord) -> float | None:
    values = record.series("val_accuracy")[1]
    return max(values) if values else None


def chance(record: RunRecord) -> float | None:
    """The validation accuracy of always guessing the most common class (``None``: the
    run records no classes)."""
    dataset = record.metrics.get("dataset") or {}
    counts = list(((dataset.get("class_counts") or {}).get("validation") or {}).values())
    if counts and sum(counts):
        return max(counts) / sum(counts)
    names = dataset.get("class_names")
    return 1 / len(names) if names else None


def at_chance(record: RunRecord) -> bool:
    """The run's best validation accuracy is within :data:`CHANCE_MARGIN` of chance."""
    best, level = best_val_accuracy(record), chance(record)
    return best is not None and level is not None and best <= level + CHANCE_MARGIN


def default_target(records: Sequence[RunRecord]) -> float | None:
    """The lowest best validation accuracy of the runs above chance (of all runs when
    none is above it; ``None``: no run has one)."""
    learned = [r for r in records if not at_chance(r)] or records
    bests = [b for b in map(best_val_accuracy, learned) if b is not None]
    return min(bests) if bests else None


def summarize(
    record: RunRecord, label: str, target: float | None, differs: Mapping[str, Any]
) -> dict[str, Any]:
    """One run's row of the comparison."""
    epochs, val = record.series("val_accuracy")
    best = max(range(len(val)), key=val.__getitem__) if val else None
    timings = dict(record.metrics.get("timings") or {})
    stages = stage_epochs(record)
    return {
        "label": label,
        "path": str(record.path),
        "status": record.status,
        "error": record.metrics.get("error"),
        **{kind: record.config.get(kind, {}).get("name") for kind in KINDS},
        "differs": {k: v for k, v in differs.items() if not _unset(v)},
        "parameters": dict(record.metrics.get("parameters") or {}),
        "epochs": len(record.history),
        "planned_epochs": sum(s["planned"] or 0 for s in stages.values()) or None,
        "stages": stages,
        "chance": chance(record),
        "at_chance": at_chance(record),
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


def stage_epochs(record: RunRecord) -> dict[str, dict[str, int | None]]:
    """Epochs done and planned per stage: ``{"head": {"done": 3, "planned": 5}, ...}``.

    Rows recorded without a stage (by an older zoo) belong to the head stage.
    """
    planned = {
        "head": record.config.get("epochs"),
        "fine_tune": record.config.get("fine_tune_epochs"),
    }
    done = Counter(row.get("stage") or "head" for row in record.history)
    return {
        stage: {"done": done[stage], "planned": planned.get(stage)}
        for stage in dict.fromkeys(["head", *done, *(s for s, n in planned.items() if n)])
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
    differ = [k for k in _keys(flats) if len({repr(flat.get(k)) for flat in flats}) > 1]
    return [{k: flat.get(k) for k in differ} for flat in flats]


def run_labels(records: Sequence[RunRecord], given: Sequence[str] = ()) -> list[str]:
    """A short label per run: ``given`` for the first runs, then the recipes when they
    tell the runs apart, else the fewest differing settings that do; runs that differ
    in nothing are numbered (``small_cnn #2``)."""
    recipes = [r.config.get("recipe") for r in records]
    if all(recipes) and len(set(recipes)) == len(recipes):
        defaults = [str(r) for r in recipes]
    else:
        defaults = _telling_labels([flat_settings(r.config) for r in records])
    labels = [*given, *defaults[len(given) :]]
    repeated = {label for label in labels if labels.count(label) > 1}
    return [f"{label} #{i}" if label in repeated else label for i, label in enumerate(labels, 1)]


def _telling_labels(flats: Sequence[Mapping[str, Any]]) -> list[str]:
    """Labels made of the fewest differing settings that make them distinct: names
    first (backbone, head, dataset), then other settings in their order."""
    differ = [k for k in _keys(flats) if len({repr(f.get(k)) for f in flats}) > 1]
    differ.sort(key=lambda k: _NAMED.index(k) if k in _NAMED else len(_NAMED))
    chosen: list[str] = []
    for key in differ:
        if len({_label(f, chosen) for f in flats}) == len(flats):
            break
        if len({_label(f, [*chosen, key]) for f in flats}) > len(
            {_label(f, chosen) for f in flats}
        ):
            chosen.append(key)
    return [_label(f, chosen) or str(f.get("backbone")) for f in flats]


def _label(flat: Mapping[str, Any], keys: Sequence[str]) -> str:
    parts = [
        str(flat[k]) if k in _NAMED else f"{k.rsplit('.', 1)[-1]}={flat[k]}"
        for k in keys
        if not _unset(flat.get(k))
    ]
    return " ".join(parts)


def _unset(value: Any) -> bool:
    """``None`` (a parameter the run's component lacks) or ``""`` (a setting left empty)."""
    return value is None or value == ""


def _keys(flats: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for flat in flats for k in flat))


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
        if at_chance(record):
            warnings.append(
                f"run {label} stayed at chance (best validation accuracy "
                f"{best_val_accuracy(record):.4f}, chance {chance(record):.4f}); "
                "the default target ignores it"
            )
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
    """Draw :func:`figure` to ``path`` as a PNG."""
    return write_figure(figure(records, comparison), path, fix="pass another --figure PATH")


def figure(records: Sequence[RunRecord], comparison: Mapping[str, Any]) -> Figure:
    """Training and validation accuracy and loss per epoch of every run.

    Solid lines are validation, dashed lines training; a dotted vertical line marks
    where a run's fine-tuning stage starts, a grey line the target accuracy. One legend,
    outside the plots, names each run once by its colour.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    # A bare Figure draws with the Agg canvas: no display, no pyplot state.
    drawn = Figure(figsize=(13, 4.8), dpi=100, layout="constrained")
    axes = dict(zip(("accuracy", "loss"), drawn.subplots(1, 2), strict=True))
    palette = colormaps["tab10" if len(records) <= 10 else "tab20"]
    handles = []
    for i, (record, row) in enumerate(zip(records, comparison["runs"], strict=True)):
        notes = [row["status"]] if row["status"] != "completed" else []
        notes += ["resumed"] if row["resumed"] else []
        name = row["label"] + (f" ({', '.join(notes)})" if notes else "")
        colour = palette(i % palette.N)
        _plot_run(axes, record, colour)
        handles.append(Line2D([], [], color=colour, marker="o", markersize=3, label=name))
    handles += [
        Line2D([], [], color="black", linestyle="-", label="validation"),
        Line2D([], [], color="black", linestyle="--", label="training"),
    ]
    if any(r.stage_starts().get("fine_tune") for r in records):
        handles.append(Line2D([], [], color="black", linestyle=":", label="fine-tuning starts"))
    if comparison.get("target") is not None:
        target = comparison["target"]
        label = f"target {target:.4f}"
        axes["accuracy"].axhline(target, color="grey", linestyle=":", linewidth=1)
        handles.append(Line2D([], [], color="grey", linestyle=":", linewidth=1, label=label))
    for metric, ax in axes.items():
        ax.set_title(f"training and validation {metric}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    drawn.legend(handles=handles, loc="outside right upper", fontsize="small")
    return drawn


def _plot_run(axes: Mapping[str, Any], record: RunRecord, colour: Any) -> None:
    for metric, ax in axes.items():
        for key, style in ((metric, "--"), (f"val_{metric}", "-")):
            epochs, values = record.series(key)
            if epochs:
                ax.plot(epochs, values, style, color=colour, marker="o", markersize=3)
        start = record.stage_starts().get("fine_tune")
        if start is not None:
            ax.axvline(start - 0.5, color=colour, linestyle=":")
