"""Per-epoch checkpoints that survive Ctrl-C and SIGKILL, even in the middle of a write.

A checkpoint is a folder ``checkpoints/epoch-0003/`` holding the model's weights, the
optimizer's variables and ``state.json`` (the history so far, what the loop needs to
continue, and each file's size and SHA-256). It is written under a temporary name,
flushed to disk, and renamed into place (:func:`zoo.train.durability.folders.write_folder`); then
``checkpoints/latest.json`` points at it, for people and tools (zoo finds the newest
checkpoint by its folder name). A process killed at any moment leaves either the
previous checkpoint or the new one, never half of one.

The two newest checkpoints are kept: when the newest is found damaged later (a
truncated copy, a full disk), a resume falls back to the one before and runs one more
epoch again (:func:`find`). Damage is told apart from a model that changed: files that
do not match their record are damaged; intact files that do not fit the model built
now are a mismatch (:func:`restore`).
"""

from __future__ import annotations

import re
import shutil
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from zoo.errors import ZooError
from zoo.storage import disk_full, runs
from zoo.storage.runs import Stage
from zoo.train.durability import interrupts
from zoo.train.durability.folders import describe_files, files_problem, save_weights, write_folder

if TYPE_CHECKING:
    import keras

    from zoo.model.assemble import Assembled

FOLDER = "checkpoints"
LATEST = "latest.json"
WEIGHTS = "model.weights.h5"
OPTIMIZER = "optimizer.npz"
STATE = "state.json"
#: Checkpoints kept: the newest, and the one before it in case the newest is damaged.
KEEP = 2
_FOLDER_NAME = re.compile(r"epoch-(\d+)")


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


def folder_name(epoch: int) -> str:
    """``epoch-0003``: the folder of a checkpoint (or best epoch) of ``epoch``."""
    return f"epoch-{epoch:04d}"


def save(
    run_dir: Path,
    state: CheckpointState,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
) -> Checkpoint:
    """Write the checkpoint of ``state.epoch`` atomically, and point ``latest.json`` at it."""
    import numpy as np

    def write(partial: Path) -> None:
        save_weights(model, partial / WEIGHTS)
        interrupts.point("checkpoint.weights", state.epoch)
        disk_full.point("checkpoint", partial / OPTIMIZER)
        with open(partial / OPTIMIZER, "wb") as f:
            np.savez(f, *[variable.numpy() for variable in optimizer.variables])
        files = describe_files(partial, (WEIGHTS, OPTIMIZER))
        runs.write_json(partial / STATE, {**state.to_json(), "files": files})
        interrupts.point("checkpoint.files", state.epoch)

    folder = run_dir / FOLDER
    what = f"the checkpoint of epoch {state.epoch}"
    needed = disk_full.variable_bytes(model, optimizer)
    final = write_folder(folder, folder_name(state.epoch), write, what, needed)
    interrupts.point("checkpoint.latest", state.epoch)
    with disk_full.writing(what, folder / LATEST, lambda: 4096):
        runs.write_json(folder / LATEST, {"epoch": state.epoch, "path": final.name})
    _prune(folder)
    return Checkpoint(final, state)


@dataclass(frozen=True)
class Damaged:
    """A checkpoint folder that cannot be used, and why."""

    path: Path
    problem: str


def find(run_dir: Path) -> tuple[Checkpoint | None, list[Damaged]]:
    """The newest intact checkpoint of ``run_dir`` (or ``None``), and the newer ones
    found damaged (newest first). Files are checked against their recorded sizes and
    SHA-256; the folders half-written when a process was killed do not count."""
    damaged: list[Damaged] = []
    for path in epoch_folders(run_dir / FOLDER):
        try:
            return read(path), damaged
        except _DamagedError as exc:
            damaged.append(Damaged(path, str(exc)))
    return None, damaged


def latest(run_dir: Path) -> Checkpoint | None:
    """The newest intact checkpoint of ``run_dir``, or ``None``."""
    return find(run_dir)[0]


def saved(
    run_dir: Path | None, epoch: int, history: Sequence[Mapping[str, Any]]
) -> tuple[int, list[dict[str, Any]]]:
    """The epochs saved on disk (those a resume finds: the newest checkpoint in
    ``run_dir``; ``epoch``, on a worker that writes none), and their ``history`` rows."""
    if run_dir is not None:
        newest = latest(run_dir)
        epoch = newest.epoch if newest is not None else 0
    return epoch, [dict(row) for row in history if row["epoch"] <= epoch]


def epoch_folders(folder: Path) -> list[Path]:
    """The finished ``epoch-NNNN`` folders in ``folder``, newest first."""
    found = [p for p in folder.glob("epoch-*") if _FOLDER_NAME.fullmatch(p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(p.name.removeprefix("epoch-")), reverse=True)


def read(path: Path) -> Checkpoint:
    """The checkpoint in ``path``, its files checked.

    Raises:
        _DamagedError: what is wrong with it.
    """
    data, problem = runs.json_problem(path / STATE)
    if problem:
        raise _DamagedError(f"{STATE} {problem}")
    try:
        state = CheckpointState.from_json(data)
        recorded = data.get("files") or {name: None for name in (WEIGHTS, OPTIMIZER)}
        problem = files_problem(path, {k: v for k, v in recorded.items() if v is not None})
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise _DamagedError(f"{STATE} is not a checkpoint's state ({exc!r})") from None
    missing = [name for name, v in recorded.items() if v is None and not (path / name).is_file()]
    problem = problem or (f"{missing[0]} is missing" if missing else None)
    if problem:
        raise _DamagedError(problem)
    return Checkpoint(path, state)


class _DamagedError(Exception):
    pass


def restore(
    checkpoint: Checkpoint, model: keras.Model, optimizer: keras.optimizers.Optimizer
) -> None:
    """Load ``checkpoint`` into ``model`` and ``optimizer`` (built on the same variables).

    Raises:
        ZooError: a file cannot be read (damaged, for checkpoints that recorded no
            digests), or the checkpoint does not fit the model built now.
    """
    import numpy as np

    try:
        with np.load(checkpoint.path / OPTIMIZER) as stored:
            values = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise _damaged(checkpoint, OPTIMIZER, exc) from exc
    load_weights(checkpoint, model)
    variables = optimizer.variables
    if [v.shape for v in values] != [tuple(v.shape) for v in variables]:
        raise _mismatch(checkpoint, ValueError("the optimizer's variables do not match"))
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def load_weights(checkpoint: Checkpoint, model: keras.Model) -> None:
    """Load only the model's weights of ``checkpoint`` (its stage has ended).

    Raises:
        ZooError: as :func:`restore`.
    """
    try:
        model.load_weights(checkpoint.path / WEIGHTS)
    except OSError as exc:  # h5py cannot read the file
        raise _damaged(checkpoint, WEIGHTS, exc) from exc
    except ValueError as exc:
        raise _mismatch(checkpoint, exc) from exc


def _damaged(checkpoint: Checkpoint, name: str, exc: Exception) -> ZooError:
    return ZooError(
        f"the checkpoint {checkpoint.path} is damaged: its {name} cannot be read ({exc}).",
        expected="a checkpoint as zoo wrote it",
        fix=f"remove {checkpoint.path} to resume from an older checkpoint, if there is one; "
        "or restore the run directory from a copy",
    )


def _mismatch(checkpoint: Checkpoint, exc: Exception) -> ZooError:
    # Keras's message goes on to print the variable's values.
    reason = " ".join(str(exc).split("Target variable:")[0].split())[:400].rstrip(". ")
    return ZooError(
        f"the checkpoint {checkpoint.path} does not fit the model built now: {reason}.",
        expected="the same components, parameters and plugin versions as the interrupted run",
        fix="reinstall the plugin versions the run used (metrics.json lists them), "
        "or start a new run",
    )


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
        (which ended there) restores only the weights, and ``stage`` starts afresh. A
        moving average of the weights (``--ema``) was saved in the model's place, as
        the trainer validates and saves it; the trained weights go back in the model to
        go on training.
        """
        checkpoint, self.checkpoint = self.checkpoint, None
        if checkpoint is None:
            return 0
        model = self._model(checkpoint)
        if checkpoint.state.stage != stage:
            load_weights(checkpoint, model)
            return 0
        restore(checkpoint, model, optimizer)
        if not checkpoint.state.stage_done:
            from zoo.model.assemble import swap_average  # imports Keras

            swap_average(optimizer)
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


def _prune(folder: Path) -> None:
    """Remove all but the :data:`KEEP` newest checkpoints, and leftovers of
    interrupted writes."""
    for path in epoch_folders(folder)[KEEP:]:
        shutil.rmtree(path, ignore_errors=True)
    for path in folder.glob(".epoch-*"):
        shutil.rmtree(path, ignore_errors=True)
