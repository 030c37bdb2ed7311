"""What ``zoo run --find-lr`` leaves: the curve as JSON and a figure with the suggestion.

Each test gets a folder of its own under ``OUTPUT/lr-find/`` (named as run directories
are, so two never collide), apart from the run directories: it holds no model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.model.scoring import write_figure
from zoo.storage import runs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The folder under ``--output`` that holds the tests, and the files of one.
FOLDER, FIGURE, CURVE = "lr-find", "lr_find.png", "lr_find.json"


def write(
    curve: Mapping[str, Any], output: Path, name: str, config: Mapping[str, Any]
) -> dict[str, Any]:
    """Write a test's folder: its config.json, the ``curve`` (``Curve.to_dict()`` of
    :mod:`zoo.train.lr_find`) and its figure. Return what the command prints: the
    suggestion, why the test stopped, and where the files are."""
    folder = runs.new_run_dir(output / FOLDER, name)
    runs.write_json(folder / runs.CONFIG, config)
    runs.write_json(folder / CURVE, curve)
    write_figure(figure(curve), folder / FIGURE, fix="pass another --output DIR")
    return {
        "suggested_learning_rate": curve["suggested_learning_rate"],
        "lowest_loss_at": curve["lowest_loss_at"],
        "stopped": curve["stopped"],
        "batches": len(curve["rates"]),
        "folder": folder,
        "figure": folder / FIGURE,
    }


def figure(curve: Mapping[str, Any]) -> Figure:
    """The loss (each batch's, faint; smoothed, bold) against the learning rate on a log
    axis, the suggested rate marked."""
    from matplotlib.figure import Figure

    drawn = Figure(figsize=(7, 4.5), dpi=100, layout="constrained")
    ax = drawn.subplots()
    rates, smoothed = curve["rates"], curve["smoothed"]
    ax.plot(rates, curve["losses"], color="tab:blue", alpha=0.3, label="loss per batch")
    ax.plot(rates, smoothed, color="tab:blue", label="smoothed")
    suggested = curve["suggested_learning_rate"]
    if suggested is not None:
        ax.axvline(suggested, color="tab:red", linestyle="--", label=f"suggested {suggested:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test")
    finite = [s for s in smoothed if math.isfinite(s)]
    if finite:  # the blow-up at the end would flatten the rest
        low = min(finite)
        ax.set_ylim(low * 0.9, min(max(finite), 4 * low) * 1.1)
    ax.legend()
    return drawn
