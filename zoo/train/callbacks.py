"""The callbacks every run has: early stopping, NaN stop, checkpoints, TensorBoard, the record.

Each reacts to the events of :mod:`zoo.train.events` and keeps its own typed state;
none prints (the console reporter, :mod:`zoo.train.reporter`, does). Only the chief
worker gets the ones that write files.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from zoo.data.summary import summarize
from zoo.errors import RunFailed
from zoo.model.scoring import Evaluation
from zoo.runtime.loader import tf
from zoo.storage import disk_full, runs
from zoo.storage.runs import Stage
from zoo.train.durability import checkpoints, interrupts
from zoo.train.events import (
    Callback,
    EpochEnd,
    EpochStart,
    RunEnd,
    RunStart,
    RunWarning,
    StagePlan,
    StageStart,
)
from zoo.train.monitor import Improvement, Monitor
from zoo.train.record import Record

if TYPE_CHECKING:
    from zoo.runtime.runners import RuntimeChoice
    from zoo.train.finetune import Unfrozen

#: An exception that ends a run, given back as it came.
Raised = TypeVar("Raised", bound=BaseException)


class EarlyStopping(Callback):
    """Ends a stage after ``patience`` epochs without a better ``monitor`` (0: never)."""

    def __init__(self, patience: int, monitor: Monitor | None = None) -> None:
        self.patience = patience
        self.monitor = monitor or Monitor()
        self.state = Improvement(self.monitor)

    def on_stage_begin(self, stage: StageStart) -> None:
        values = (self.monitor.value(row) for row in stage.previous)
        self.state = Improvement.replay(self.monitor, values)

    def should_stop(self, stage: Stage, logs: Mapping[str, float]) -> str | None:
        if self.patience <= 0:
            return None
        if self.state.update(self.monitor.value(logs)) < self.patience:
            return None
        epochs = f"{self.patience} epoch{'s' if self.patience != 1 else ''}"
        return f"early stopping: {self.monitor.name} did not improve for {epochs}"


class TerminateOnNaN(Callback):
    """Fails the run when the training loss becomes NaN or infinite, naming where."""

    def __init__(self) -> None:
        self.learning_rate = 0.0
        self.epoch = 0

    def on_stage_begin(self, stage: StageStart) -> None:
        self.learning_rate = stage.plan.learning_rate

    def on_epoch_begin(self, epoch: EpochStart) -> None:
        self.epoch = epoch.epoch

    def on_train_batch_end(self, step: int, logs: Mapping[str, float]) -> None:
        if math.isfinite(logs["loss"]):
            return
        raise RunFailed(
            f"the training loss became NaN or infinite in epoch {self.epoch} "
            f"(step {step + 1}); training stopped and the run is marked failed. "
            f"Try a lower learning rate (now {self.learning_rate:g})."
        )


class Checkpointing(Callback):
    """Writes a checkpoint after every epoch (:mod:`zoo.train.durability.checkpoints`)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.plan: StagePlan | None = None

    def on_stage_begin(self, stage: StageStart) -> None:
        self.plan = stage.plan

    def on_epoch_end(self, epoch: EpochEnd) -> None:
        assert self.plan is not None, "on_stage_begin comes first"
        plan = self.plan
        state = checkpoints.CheckpointState(
            epoch=epoch.epoch,
            stage=epoch.stage,
            stage_epoch=epoch.stage_epoch,
            stage_done=epoch.stage_done,
            history=epoch.history,
            weights="model" if plan.backbone_sha256 is None else "head",
            backbone_sha256=plan.backbone_sha256,
        )
        checkpoints.save(self.run_dir, state, plan.checkpointed, plan.optimizer)


class TensorBoard(Callback):
    """Per-epoch scalars under ``logs/train`` and ``logs/validation``, as Keras names them
    (``epoch_loss``, ``epoch_accuracy``), so the tutorial's TensorBoard views work.

    ``logs`` itself is the run's session in the HParams dashboard, as ``hp.KerasCallback``
    writes one: the settings (``hparams``, :meth:`zoo.runconfig.RunConfig.flat`) when the
    run begins, its success when it completes. TensorBoard takes the splits' scalars as
    the session's metrics (``epoch_accuracy`` of ``validation``) and keeps the first
    summary of each kind in a run, so a resume, with the same settings, writes no start,
    and a run that failed or was interrupted, which may yet be resumed, writes no end.

    The writers open when the run begins (a full disk then fails the run as any write
    does) and flush every epoch; a full disk is :class:`zoo.storage.disk_full.DiskFull`.
    """

    SPLITS = ("train", "validation")

    def __init__(self, run_dir: Path, hparams: Mapping[str, str | int | float | bool]) -> None:
        self.logs = run_dir / runs.LOGS
        self.hparams = dict(hparams)
        self.writers: dict[str, Any] = {}

    def on_run_begin(self, run: RunStart) -> None:
        for split in self.SPLITS:
            with self._writing():
                self.writers[split] = tf.summary.create_file_writer(str(self.logs / split))
        if run.resumed_from is None:
            self._write_session("start")

    def on_epoch_end(self, epoch: EpochEnd) -> None:
        for split, writer in self.writers.items():
            prefix = "val_" if split == "validation" else ""
            with self._writing(), writer.as_default():
                for name, value in epoch.logs.items():
                    if name.startswith("val_") == bool(prefix):
                        name = f"epoch_{name.removeprefix(prefix)}"
                        tf.summary.scalar(name, value, step=epoch.epoch - 1)
                rate = epoch.history[-1].get("learning_rate")
                if not prefix and rate is not None:  # where Keras's callback writes it
                    tf.summary.scalar("epoch_learning_rate", rate, step=epoch.epoch - 1)
                writer.flush()

    def on_run_end(self, end: RunEnd) -> None:
        for writer in self.writers.values():
            try:
                with self._writing():
                    writer.close()
            except disk_full.DiskFull:
                if end.status == "completed":
                    raise  # a failed run's logs were flushed each epoch: they stay as they are
        if end.status == "completed":
            self._write_session("end")

    def _write_session(self, part: Literal["start", "end"]) -> None:
        """Write the session's start (the settings) or end (a success) into ``logs`` itself."""
        # Imported here as TensorFlow is: they load it. (tensorboard ships no types.)
        from tensorboard.plugins.hparams import api, api_pb2, summary  # type: ignore[import-untyped]

        if part == "start":
            pb = api.hparams_pb(self.hparams, trial_id=self.logs.parent.name)
        else:
            pb = summary.session_end_pb(api_pb2.STATUS_SUCCESS)
        with self._writing():
            writer = tf.summary.create_file_writer(str(self.logs))
            with writer.as_default():
                tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=0)
            writer.close()

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        return disk_full.writing("the TensorBoard logs", self.logs, lambda: 65536)


class RunRecord(Callback):
    """Keeps metrics.json current: what ran where, each epoch, how the run ended.

    A run that failed or was interrupted ends all the same when its end cannot be
    recorded for a full disk: :meth:`unrecorded` then tells the failure so.
    """

    def __init__(self, record: Record, tracking: Callable[[], Mapping[str, Any]] = dict) -> None:
        self.record = record
        self.tracking = tracking
        self.lost: disk_full.DiskFull | None = None

    def tracked(self) -> None:
        """What this process's observers say of themselves (MLflow's run id), under
        ``tracking`` (:func:`zoo.train.observers.said`)."""
        tracking = self.tracking()
        if tracking:
            self.record.update(tracking=dict(tracking))
        else:  # a resume told to no observer (--track ''): nothing tracks it now
            self.record.data.pop("tracking", None)

    def on_run_begin(self, run: RunStart) -> None:
        self.record.update(
            parameters=dict(run.parameters),
            dataset=summarize(run.splits).to_dict(),
            devices=list(run.devices),
            strategy=run.strategy,
            precision=run.precision,
            weights_file=dict(run.weights_file) if run.weights_file else None,
        )
        if run.resumed_from is not None:
            self.record.data["history"] = list(run.history)
            self.record.data["resumed"].append(
                {"from_epoch": run.resumed_from, "command": list(run.command), "at": _now()}
            )

    def on_warning(self, warning: RunWarning) -> None:
        found = self.record.data.setdefault("warnings", [])
        # A resumed run checks again; each problem is recorded once.
        found[:] = [w for w in found if w.get("code") != warning.code]
        found.append(warning.to_json())

    def on_runtime(self, choice: RuntimeChoice) -> None:
        self.record.update(runtime=choice.to_json())

    def on_features(self, split: str, key: str, source: str, count: int) -> None:
        used = self.record.data.setdefault("feature_cache", {})
        used[split] = {"key": key, "source": source}

    def on_stage_begin(self, stage: StageStart) -> None:
        weights = stage.plan.class_weights
        if weights is not None:
            names = self.record.data.get("dataset", {}).get("class_names") or range(len(weights))
            self.record.update(class_weights=dict(zip(map(str, names), weights, strict=True)))

    def on_fine_tune_unfrozen(self, unfrozen: Unfrozen, counts: Mapping[str, int]) -> None:
        self.record.update(
            fine_tune_parameters=dict(counts),
            fine_tune_layers=list(unfrozen.layers),
            fine_tune={
                "asked": unfrozen.spec,
                "layers": unfrozen.total,
                "top": unfrozen.top,
                "unfrozen": len(unfrozen.layers),
                "batch_norm_kept_frozen": list(unfrozen.batch_norm),
                "summary": unfrozen.describe(),
            },
        )

    def on_epoch_end(self, epoch: EpochEnd) -> None:
        self.record.data["history"] = list(epoch.history)
        self.tracked()
        interrupts.point("metrics.write", epoch.epoch)
        self.record.write("running")

    def on_evaluation(self, evaluation: Evaluation) -> None:
        self.record.update(evaluation=evaluation.to_dict())

    def on_run_end(self, end: RunEnd) -> None:
        self.record.data["history"] = list(end.history)
        if end.kept is not None:
            self.record.update(kept=dict(end.kept))
        if end.status == "completed":
            self.record.update(test=dict(end.test or {}), weights_sha256=end.weights_sha256)
        self.tracked()
        try:
            self.record.write(end.status, end.error)
        except disk_full.DiskFull as exc:
            if end.status == "completed":
                raise
            self.lost = exc  # recording it needs the disk that is full: the run ends as it is

    def unrecorded(self, failure: Raised) -> Raised:
        """``failure``, saying that it could not be recorded, if so: in a full disk's
        message, or as a note (``add_note``), which the console prints after the error,
        or as a warning after an interruption."""
        if self.lost is None or self.record.run_dir is None:
            return failure
        record = self.record.run_dir / runs.METRICS
        if isinstance(failure, disk_full.DiskFull):
            failure.unrecorded(record)
        else:
            end = "interruption" if isinstance(failure, KeyboardInterrupt) else "failure"
            failure.add_note(f"the {end} could not be recorded in {record} (the disk is full)")
        return failure


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")
