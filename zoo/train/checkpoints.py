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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from zoo import runs
from zoo.errors import ZooError
from zoo.runs import Stage

if TYPE_CHECKING:
    import keras

    from zoo.model import Assembled

FOLDER = "checkpoints"
LATEST = "latest.json"
WEIGHTS = "model.weights.h5"
OPTIMIZER = "optimizer.npz"
STATE = "state.json"


Weights = Literal["model", "head"]


@dataclass(frozen=True)
class CheckpointState:
    """Where a run stands after an epoch: ``state.json`` beside the weights.

    Args:
        epoch: Epochs finished, over all stages (1-based: the checkpoint's epoch).
        stage: The stage the epoch belongs to.
        stage_epoch: Epochs of ``stage`` finished.
        stage_done: ``stage`` has ended (its last epoch, or early stopping).
        history: Every epoch's row so far, as metrics.json holds them.
        weights: ``model`` (the whole model) or ``head`` (the head alone: a frozen
            backbone is rebuilt from the configuration on resume).
        backbone_sha256: With ``head``, the digest of the frozen backbone's weights,
            checked on resume.
    """

    epoch: int
    stage: Stage = "head"
    stage_epoch: int = 0
    stage_done: bool = False
    history: tuple[dict[str, Any], ...] = ()
    weights: Weights = "model"
    backbone_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "stage": self.stage,
            "stage_epoch": self.stage_epoch,
            "stage_done": self.stage_done,
            "history": list(self.history),
        }
        if self.weights == "head":
            data.update(weights="head", backbone_sha256=self.backbone_sha256)
        return {**data, "epoch": self.epoch}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckpointState:
        """Read ``state.json``; keys an older zoo did not write take their defaults."""
        return cls(
            epoch=int(data["epoch"]),
            stage=data.get("stage", "head"),
            stage_epoch=int(data.get("stage_epoch", 0)),
            stage_done=bool(data.get("stage_done", False)),
            history=tuple(data.get("history", ())),
            weights="head" if data.get("weights") == "head" else "model",
            backbone_sha256=data.get("backbone_sha256"),
        )


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint on disk and its state."""

    path: Path
    state: CheckpointState

    @property
    def epoch(self) -> int:
        return self.state.epoch


def save(
    run_dir: Path,
    state: CheckpointState,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
) -> Checkpoint:
    """Write the checkpoint of ``state.epoch`` atomically, and point ``latest.json`` at it."""
    import numpy as np

    def write(partial: Path) -> None:
        model.save_weights(partial / WEIGHTS)
        with open(partial / OPTIMIZER, "wb") as f:
            np.savez(f, *[variable.numpy() for variable in optimizer.variables])
        runs.write_json(partial / STATE, state.to_json())

    folder = run_dir / FOLDER
    final = write_folder(folder, f"epoch-{state.epoch:04d}", write)
    runs.write_json(folder / LATEST, {"epoch": state.epoch, "path": final.name})
    _prune(folder, keep=final.name)
    return Checkpoint(final, state)


def write_folder(parent: Path, name: str, write: Callable[[Path], None]) -> Path:
    """``parent/name``, written by ``write(folder)`` under a temporary name, flushed to
    disk and renamed into place: a process killed at any moment leaves all of it or
    none. An existing folder of that name (a resumed run redoing an epoch) is replaced.
    """
    parent.mkdir(exist_ok=True)
    final = parent / name
    partial = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    try:
        write(partial)
        _fsync_tree(partial)
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


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
            return Checkpoint(
                candidate, CheckpointState.from_json(runs.read_json(candidate / STATE))
            )
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


class Resume:
    """The checkpoint a resumed run continues from; the first stage that runs takes it.

    Args:
        checkpoint: The newest complete checkpoint, or ``None`` (a new run, or one
            stopped before its first epoch ended).
        assembled: The model built now.
        backbone_digest: The digest of the backbone built now, to check a checkpoint
            that holds the head alone against.
    """

    def __init__(
        self,
        checkpoint: Checkpoint | None,
        assembled: Assembled,
        backbone_digest: Callable[[], str],
    ) -> None:
        self.checkpoint = checkpoint
        self.assembled = assembled
        self.backbone_digest = backbone_digest

    @property
    def skips_head(self) -> bool:
        """The head stage had ended: the run stopped while fine-tuning, or before it."""
        state = self.checkpoint.state if self.checkpoint is not None else None
        return state is not None and (state.stage == "fine_tune" or state.stage_done)

    def restore(self, stage: Stage, optimizer: keras.optimizers.Optimizer) -> int:
        """Load the checkpoint for ``stage``; return how many of its epochs are done.

        A checkpoint of ``stage`` restores the optimizer too; one of the previous stage
        (which ended there) restores only the weights, and ``stage`` starts afresh.
        """
        checkpoint, self.checkpoint = self.checkpoint, None
        if checkpoint is None:
            return 0
        model = self._model(checkpoint)
        if checkpoint.state.stage != stage:
            load_weights(checkpoint, model)
            return 0
        restore(checkpoint, model, optimizer)
        return checkpoint.state.stage_epoch

    def finish(self) -> None:
        """Load the weights of a run resumed after its last epoch: only the test is left."""
        if self.checkpoint is not None:
            load_weights(self.checkpoint, self._model(self.checkpoint))
            self.checkpoint = None

    def _model(self, checkpoint: Checkpoint) -> keras.Model:
        """The model whose weights ``checkpoint`` holds: the whole model, or the head."""
        if checkpoint.state.weights != "head":
            return self.assembled.model
        if checkpoint.state.backbone_sha256 != self.backbone_digest():
            raise ZooError(
                f"the frozen backbone built now differs from the one "
                f"{checkpoint.path.parent.parent} was trained on, so its checkpoint "
                "cannot continue.",
                expected="the same backbone weights as the interrupted run",
                fix="restore the weights file or plugin version the run used "
                "(metrics.json lists them), or start a new run",
            )
        return self.assembled.head


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
