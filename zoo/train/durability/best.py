"""Keeping the best epoch (``--keep best``): its weights beside the checkpoints, restored
before the test and the save.

After every epoch whose ``--monitor`` value beats every earlier epoch of the run (both
stages count), :class:`KeepBest` writes the trained weights to ``best/epoch-NNNN/``
(weights and ``state.json``) atomically, as checkpoints are written, then points
``best/best.json`` at it. A run killed at any moment and resumed reads the best so far
from there. Head-only weights are kept while a frozen backbone's head trains; when
fine-tuning then starts, the best is rewritten as whole-model weights (the frozen
backbone with the best head), since fine-tuning changes the backbone.

Fine-tuning starts from the head stage's last epoch, as without ``--keep best``; the
kept epoch is chosen over all epochs of both stages at the end.

A best epoch whose files a resume finds damaged or missing (:func:`inspect`) is lost;
the resume then counts the checkpoint's epoch as the best so far (its weights are the
checkpoint's) and keeps the best of that epoch and the later ones: ``since`` records
where the choice starts, in ``state.json`` and in metrics.json's ``kept``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.storage import disk_full, runs
from zoo.storage.runs import Stage
from zoo.train.durability import interrupts
from zoo.train.durability.checkpoints import WEIGHTS, Weights, folder_name
from zoo.train.durability.folders import describe_files, files_problem, save_weights, write_folder
from zoo.train.events import Callback, EpochEnd, Row, RunStart, StagePlan, StageStart
from zoo.train.monitor import Monitor

if TYPE_CHECKING:
    from zoo.model.assemble import Assembled

FOLDER = "best"
POINTER = "best.json"
STATE = "state.json"


@dataclass(frozen=True)
class Best:
    """The best epoch so far and where its weights are.

    Args:
        epoch: The epoch, counted over all stages.
        stage: Its stage.
        monitor: The metric it is best by.
        value: Its value of that metric.
        weights: ``model`` (the whole model) or ``head`` (the head of a frozen backbone).
        path: The folder holding its weights.
        since: The first epoch it was chosen from (later than 1 after a resume found
            the best epoch's files damaged).
    """

    epoch: int
    stage: Stage
    monitor: str
    value: float
    weights: Weights
    path: Path
    since: int = 1

    def to_json(self) -> dict[str, Any]:
        fields = ("epoch", "stage", "monitor", "value", "weights")
        since = {"since": self.since} if self.since > 1 else {}
        return {**{name: getattr(self, name) for name in fields}, **since}


def load(run_dir: Path) -> Best | None:
    """The best epoch a run directory has kept, or ``None`` (none yet, or damaged)."""
    return inspect(run_dir)[0]


def inspect(run_dir: Path) -> tuple[Best | None, str | None]:
    """The best epoch a run directory has kept and ``None``, or ``None`` and what is
    wrong with ``best/`` (``None, None`` when there is no ``best/``)."""
    folder = run_dir / FOLDER
    if not folder.exists():
        return None, None
    pointer, problem = runs.json_problem(folder / POINTER)
    if problem:
        return None, f"{FOLDER}/{POINTER} {problem}"
    try:
        path = folder / str(pointer["path"])
        state, problem = runs.json_problem(path / STATE)
        if problem:
            return None, f"{FOLDER}/{path.name}/{STATE} {problem}"
        files = state.pop("files", {WEIGHTS: None})
        if files.get(WEIGHTS) is None and not (path / WEIGHTS).is_file():
            return None, f"{FOLDER}/{path.name}/{WEIGHTS} is missing"
        problem = files_problem(path, {k: v for k, v in files.items() if v is not None})
        best = Best(**state, path=path)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        return None, f"{FOLDER}/ does not hold a best epoch zoo wrote ({exc!r})"
    return (None, f"{FOLDER}/{path.name}/{problem}") if problem else (best, None)


class KeepBest(Callback):
    """Writes the weights of each new best epoch; :meth:`restore` loads the best back.

    Args:
        monitor: What "best" means.
        assembled: The run's model and its parts.
        directory: The run directory on the chief; ``None`` on other workers, which keep
            theirs in a temporary folder.
        previous: The best a resumed run had kept.
    """

    def __init__(
        self,
        monitor: Monitor,
        assembled: Assembled,
        directory: Path | None,
        previous: Best | None = None,
    ) -> None:
        self.monitor = monitor
        self.assembled = assembled
        self._temporary: Path | None = None
        if directory is None:
            directory = self._temporary = Path(tempfile.mkdtemp(prefix="zoo-best-"))
        self.folder = directory / FOLDER
        self.best = previous
        self.since = previous.since if previous is not None else 1
        self.plan: StagePlan | None = None

    def on_run_begin(self, run: RunStart) -> None:
        """A best so far that lives elsewhere (a checkpoint's weights, after a resume
        found ``best/`` damaged) is copied in before that checkpoint is pruned."""
        best = self.best
        if best is not None and best.path.parent != self.folder:

            def copy(partial: Path) -> None:
                shutil.copyfile(best.path / WEIGHTS, partial / WEIGHTS)

            self.best = self._write(best, copy)

    def on_stage_begin(self, stage: StageStart) -> None:
        self.plan = stage.plan
        if self.best is not None and self.best.weights == "head" and stage.plan.stage != "head":
            self._as_whole_model(self.best)

    def on_epoch_end(self, epoch: EpochEnd) -> None:
        assert self.plan is not None, "on_stage_begin comes first"
        value = self.monitor.value(epoch.logs)
        if self.best is None or self.monitor.better(value, self.best.value):
            interrupts.point("best.write", epoch.epoch)
            weights: Weights = "head" if self.plan.backbone_sha256 else "model"
            best = Best(
                epoch.epoch, epoch.stage, self.monitor.name, value, weights, Path(), self.since
            )
            self.best = self._write(best, self._saver(self.plan.checkpointed))

    def restore(self) -> None:
        """Load the best epoch's weights into the model (or its head)."""
        if self.best is not None:
            self._model(self.best).load_weights(self.best.path / WEIGHTS)

    def close(self) -> None:
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)

    def _model(self, best: Best) -> Any:
        return self.assembled.head if best.weights == "head" else self.assembled.model

    @staticmethod
    def _saver(model: Any) -> Any:
        return lambda partial: save_weights(model, partial / WEIGHTS)

    def _write(self, best: Best, weights: Any) -> Best:
        """Write ``best``'s folder, its weights written by ``weights(folder)``."""

        def write(partial: Path) -> None:
            weights(partial)
            files = describe_files(partial, [WEIGHTS])
            runs.write_json(partial / STATE, {**best.to_json(), "files": files})

        what = f"the best epoch's weights (epoch {best.epoch})"
        needed = disk_full.variable_bytes(self._model(best))
        path = write_folder(self.folder, folder_name(best.epoch), write, what, needed)
        with disk_full.writing(what, self.folder / POINTER, lambda: 4096):
            runs.write_json(self.folder / POINTER, {"epoch": best.epoch, "path": path.name})
        for old in self.folder.iterdir():
            if old.is_dir() and old != path:
                shutil.rmtree(old, ignore_errors=True)
        return replace(best, path=path)

    def _as_whole_model(self, best: Best) -> None:
        """Rewrite a head-only best as whole-model weights, before fine-tuning changes the
        backbone: the backbone as it is (still as built) with the best head."""
        head = self.assembled.head
        current = head.get_weights()
        head.load_weights(best.path / WEIGHTS)
        whole = replace(best, weights="model")
        self.best = self._write(whole, self._saver(self.assembled.model))
        head.set_weights(current)


def kept(
    keep: str, monitor: Monitor, history: Sequence[Row], since: int = 1
) -> dict[str, Any] | None:
    """Which epoch the saved model is, for metrics.json and the end of the run.

    ``{"keep": "best", "monitor": "val_loss", "epoch": 3, "stage": "head", "value": ..,
    "best_epoch": 3, "of_epochs": 5, "metrics": {...}}``; ``None`` before any epoch.
    Epochs without the monitored metric are never best (a run that failed for want of
    it keeps the last), nor are those before ``since`` (their weights were lost; then
    ``since`` is in the answer too).
    """
    if not history:
        return None
    best: Row | None = None
    for row in history:
        value = row.get(monitor.name) if row["epoch"] >= since else None
        if value is not None and (best is None or monitor.better(value, best[monitor.name])):
            best = row
    chosen = best if keep == "best" and best is not None else history[-1]
    return {
        "keep": keep,
        "monitor": monitor.name,
        "epoch": chosen["epoch"],
        "stage": chosen.get("stage", "head"),
        "value": chosen.get(monitor.name),
        "best_epoch": best["epoch"] if best is not None else None,
        "of_epochs": len(history),
        "metrics": _metrics(chosen),
        **({"since": since} if since > 1 else {}),
    }


def _metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("epoch", "stage")}
