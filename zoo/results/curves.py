"""The figure of compared runs: their training and validation curves, side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.model.scoring import write_figure
from zoo.storage.runs import RunRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
