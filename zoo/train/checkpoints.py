"""Per-epoch checkpoints that survive Ctrl-C and SIGKILL, even in the middle of a write.

A checkpoint is a folder ``checkpoints/epoch-0003/`` holding the model's weights, the
optimizer's variables and ``state.json`` (the history so far and what the loop needs
to continue). It is written under a temporary name, flushed to disk, and renamed into
place; only then does ``checkpoints/latest.json`` point at it. A process killed at any
moment leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import runs
from zoo.errors import ZooError

if TYPE_CHECKING:
    import keras

FOLDER = "checkpoints"
LATEST = "latest.json"
WEIGHTS = "model.weights.h5"
OPTIMIZER = "optimizer.npz"
STATE = "state.json"


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint on disk and its state."""

    path: Path
    state: Mapping[str, Any]

    @property
    def epoch(self) -> int:
        return int(self.state["epoch"])


def save(
    run_dir: Path,
    epoch: int,
    state: Mapping[str, Any],
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
) -> Checkpoint:
    """Write the checkpoint of ``epoch`` (1-based, counted over all stages) atomically."""
    import numpy as np

    folder = run_dir / FOLDER
    folder.mkdir(exist_ok=True)
    final = folder / f"epoch-{epoch:04d}"
    partial = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=folder))
    try:
        model.save_weights(partial / WEIGHTS)
        with open(partial / OPTIMIZER, "wb") as f:
            np.savez(f, *[variable.numpy() for variable in optimizer.variables])
        runs.write_json(partial / STATE, {**state, "epoch": epoch})
        _fsync_tree(partial)
        if final.exists():  # a resumed run redoing an epoch whose pointer was not written
            shutil.rmtree(final)
        partial.rename(final)
        _fsync_dir(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    runs.write_json(folder / LATEST, {"epoch": epoch, "path": final.name})
    _prune(folder, keep=final.name)
    return Checkpoint(final, {**state, "epoch": epoch})


def latest(run_dir: Path) -> Checkpoint | None:
    """The newest complete checkpoint of ``run_dir``, or ``None``."""
    folder = run_dir / FOLDER
    candidates = []
    pointer = folder / LATEST
    if pointer.is_file():
        # A pointer that cannot be read falls back to scanning the folder.
        with contextlib.suppress(ValueError, KeyError):
            candidates.append(folder / json.loads(pointer.read_text())["path"])
    if folder.is_dir():
        candidates += sorted(folder.glob("epoch-*"), reverse=True)
    for candidate in candidates:
        if (candidate / STATE).is_file() and (candidate / WEIGHTS).is_file():
            return Checkpoint(candidate, runs.read_json(candidate / STATE))
    return None


def restore(
    checkpoint: Checkpoint, model: keras.Model, optimizer: keras.optimizers.Optimizer
) -> None:
    """Load ``checkpoint`` into ``model`` and ``optimizer`` (built on the same variables).

    Raises:
        ZooError: the checkpoint does not fit (the model changed since it was written).
    """
    import numpy as np

    try:
        model.load_weights(checkpoint.path / WEIGHTS)
        with np.load(checkpoint.path / OPTIMIZER) as stored:
            values = [stored[f"arr_{i}"] for i in range(len(stored.files))]
        variables = optimizer.variables
        if [v.shape for v in values] != [tuple(v.shape) for v in variables]:
            raise ValueError("the optimizer's variables do not match")
    except (ValueError, OSError) as exc:
        raise ZooError(
            f"the checkpoint {checkpoint.path} does not fit the model built now: {exc}.",
            expected="the same components, parameters and plugin versions as the interrupted run",
            fix="reinstall the plugin versions the run used (metrics.json lists them), "
            "or start a new run",
        ) from exc
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def load_weights(checkpoint: Checkpoint, model: keras.Model) -> None:
    """Load only the model's weights of ``checkpoint`` (its stage has ended)."""
    model.load_weights(checkpoint.path / WEIGHTS)


def _prune(folder: Path, keep: str) -> None:
    """Remove older checkpoints and leftovers of interrupted writes."""
    for path in folder.iterdir():
        if path.is_dir() and path.name != keep and (path.name.startswith(("epoch-", ".epoch-"))):
            shutil.rmtree(path, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
