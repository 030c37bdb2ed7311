"""One run: set up, open the run directory, run the stages, test, save; tell the callbacks.

:func:`run` chooses the placement and precision, seeds, builds the model and the data,
opens a new run directory (or reopens one to resume), plans the stages
(:mod:`zoo.train.stages`) and runs them with the :class:`~zoo.train.trainer.Trainer`,
then (with ``--keep best``) loads the best epoch's weights back (:mod:`zoo.train.durability.best`),
evaluates the test split and saves the model. What happens goes to callbacks as events
(:mod:`zoo.train.events`): those of :mod:`zoo.train.callbacks` write checkpoints,
TensorBoard logs and metrics.json after every epoch, so a run stopped by Ctrl-C or
SIGKILL resumes with ``zoo run --resume RUN_DIR``; the console reporter prints, warnings
about setups that cannot learn (:mod:`zoo.train.checks`) included.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.components import Splits
from zoo.data import pipeline
from zoo.errors import RunFailed, RunInterrupted
from zoo.model import scoring
from zoo.model.assemble import Assembled, build_model, build_splits, parameter_counts, summary_rows
from zoo.results import saving
from zoo.runconfig import Resolved, check_classes
from zoo.runtime import loader, runners
from zoo.storage import disk_full, runs
from zoo.train import checks
from zoo.train.callbacks import (
    Checkpointing,
    EarlyStopping,
    RunRecord,
    TensorBoard,
    TerminateOnNaN,
)
from zoo.train.context import RunContext
from zoo.train.durability import best, checkpoints, interrupts, lock
from zoo.train.durability.resume import Reopened, reopen
from zoo.train.events import Callback, Events, RunEnd, RunStart, RunWarning, StagePlan
from zoo.train.features import cache as feature_cache
from zoo.train.features import store
from zoo.train.loop import predict_batches
from zoo.train.monitor import Monitor
from zoo.train.record import STAGE_PHASE, Record, Timer, file_sha256
from zoo.train.schedules import ReduceOnPlateau
from zoo.train.stages import Stages
from zoo.train.trainer import Trainer

if TYPE_CHECKING:
    from zoo.train.distribute import Placement


@dataclass(frozen=True)
class EngineOptions:
    """How to run, as opposed to what (which is the ``RunConfig``).

    Args:
        strategy: ``auto``, ``default``, ``mirrored`` or ``multiworker``.
        precision: ``auto``, ``float32``, ``mixed_float16`` or ``mixed_bfloat16``.
        cache_dir: Where cached features persist (default: ``~/.cache/zoo/features``).
        cache_memory: Bytes of features kept in memory; the rest is read from disk.
        cache_max: Bytes the cache folder may hold: least recently used entries not in
            use are removed beyond it (``None``: no limit).
    """

    strategy: str = "auto"
    precision: str = "auto"
    cache_dir: Path | None = None
    cache_memory: int = feature_cache.DEFAULT_MEMORY_BUDGET
    cache_max: int | None = store.DEFAULT_MAX_SIZE


@dataclass
class RunResult:
    """What a run produced. ``run_dir`` is ``None`` for a dry run and on non-chief workers."""

    run_dir: Path | None
    parameters: dict[str, int]
    metrics: dict[str, Any] = field(default_factory=dict)


def run(
    resolved: Resolved,
    *,
    output: Path = Path("runs"),
    dry_run: bool = False,
    command: Sequence[str] | None = None,
    options: EngineOptions | None = None,
    resume: Path | None = None,
    callbacks: Sequence[Callback] = (),
    reporter: Callback | None = None,
) -> RunResult:
    """Build, train and evaluate ``resolved``; write a new run directory under ``output``.

    Args:
        resume: An interrupted run's directory to continue (``zoo run --resume``).
        callbacks: More callbacks to tell what happens (after zoo's own).
        reporter: What shows the run; by default the console
            (:class:`zoo.train.reporter.ConsoleReporter`).

    Raises:
        ZooError: a user error (data missing, bad combination, a run directory that
            cannot resume) before training starts.
        RunFailed: training stopped on a NaN loss; the run directory says so.
        RunInterrupted: Ctrl-C; what is saved was reported, and the run is resumable.
    """
    options = options or EngineOptions()
    with lock.released_on_error():  # the lock reopen takes, until the try below has it
        reopened = reopen(resume, resolved.config, options.strategy) if resume else None
        loader.load()
    import keras

    from zoo.train.reporter import ConsoleReporter

    shown = Events([reporter or ConsoleReporter()])
    previous_policy = keras.mixed_precision.global_policy()
    try:
        prepared = _prepare(resolved, options, shown)
        if dry_run:
            return RunResult(None, prepared.counts)
        splits = prepared.splits or _load_data(resolved, prepared.timer, shown)
        command = list(command or sys.argv)
        opened = _open(prepared, output, reopened, command)
        return _Run(prepared, splits, opened).execute(command, [*callbacks, *shown.callbacks])
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        lock.release()  # the run directory, which this process trained


@dataclass(frozen=True)
class _Prepared:
    """A run set up: where it runs, its model, and its data when loading came first."""

    resolved: Resolved
    options: EngineOptions
    placement: Placement
    precision: str
    assembled: Assembled
    counts: dict[str, int]
    splits: Splits | None
    timer: Timer


def _prepare(resolved: Resolved, options: EngineOptions, events: Events) -> _Prepared:
    import keras
    import tensorflow as tf

    from zoo.train.distribute import choose_precision, place
    from zoo.train.finetune import check

    runners.check(resolved.config.runtime, resolved.config.runtime_precision)
    placement = place(options.strategy, events.on_warning)
    precision = choose_precision(options.precision, placement)
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(resolved.config.seed)
    if not tf.config.list_physical_devices("GPU"):
        # Identical metrics for identical seeds; on a GPU it would cost speed.
        tf.config.experimental.enable_op_determinism()
    devices = [d.name for d in tf.config.list_logical_devices()]
    events.on_placement(devices, placement.describe(), precision)
    timer = Timer()
    splits = None
    num_classes = _known_classes(resolved)
    if num_classes is None:
        splits = _load_data(resolved, timer, events)
        num_classes = splits.num_classes
    with timer.phase("build"), placement.strategy.scope():
        assembled = build_model(resolved, num_classes)
    if resolved.config.fine_tune_epochs:
        check(assembled.backbone, resolved.config.fine_tune_layers, resolved.config.backbone.name)
    counts = parameter_counts(assembled.model)
    events.on_model_built(assembled.model.name, summary_rows(assembled.model), counts)
    return _Prepared(resolved, options, placement, precision, assembled, counts, splits, timer)


def _known_classes(resolved: Resolved) -> int | None:
    """The number of classes, when the dataset can tell without loading data."""
    dataset = resolved.dataset.component
    if dataset.class_names is None:
        return None
    return len(dataset.class_names(resolved.config.dataset.params))


def _load_data(resolved: Resolved, timer: Timer, events: Events) -> Splits:
    with timer.phase("data"):
        splits = build_splits(resolved)
    check_classes(resolved, splits.num_classes)
    events.on_data_loaded(resolved.dataset.name, splits)
    return splits


@dataclass(frozen=True)
class _Opened:
    """The run directory, locked: new, or reopened (:mod:`zoo.train.durability.resume`); ``None`` on
    workers other than the chief, unless they resume (they read it, the chief writes)."""

    run_dir: Path | None
    reopened: Reopened | None = None


def _open(
    prepared: _Prepared, output: Path, reopened: Reopened | None, command: list[str]
) -> _Opened:
    if reopened is not None:
        return _Opened(reopened.run_dir, reopened)
    if not prepared.placement.is_chief:
        return _Opened(None)
    config = prepared.resolved.config
    with disk_full.writing("a new run directory and its config.json", output, lambda: 65536):
        settings = {**config.to_dict(), "command": command}
        run_dir = lock.new_run_dir(output, "-".join(c.name for c in config.choices), settings)
    return _Opened(run_dir)


class _Run:
    """One opened run: the callbacks that hear it, the stages, the test, the saved model."""

    def __init__(self, prepared: _Prepared, splits: Splits, opened: _Opened) -> None:
        self.prepared = prepared
        self.splits = splits
        self.opened = opened
        self.run_dir = opened.run_dir
        reopened = opened.reopened
        self.checkpoint = reopened.checkpoint if reopened is not None else None
        #: Where files go: the run directory, on the chief only.
        self.writable = opened.run_dir if prepared.placement.is_chief else None
        previous = reopened.previous if reopened is not None else {}
        record = Record(self.writable, prepared.resolved, previous, prepared.timer)
        self.record = RunRecord(record)
        assembled = prepared.assembled
        config = prepared.resolved.config
        self.monitor = Monitor(config.monitor)
        self.keep_best: best.KeepBest | None = None
        if config.keep == "best":
            so_far = reopened.best if reopened is not None else None
            self.keep_best = best.KeepBest(self.monitor, assembled, self.writable, so_far)
        self.backbone_digest: Callable[[], str] = functools.cache(
            lambda: feature_cache.weights_digest(assembled.backbone)
        )

    def execute(self, command: list[str], others: Sequence[Callback]) -> RunResult:
        events = Events([*self._callbacks(), *others])
        prepared, assembled = self.prepared, self.prepared.assembled
        history = self.checkpoint.state.history if self.checkpoint is not None else ()
        trainer = Trainer(assembled.loss, assembled.metrics, prepared.placement, events, history)
        resume = checkpoints.Resume(self.checkpoint, assembled, self.backbone_digest)
        stages = Stages(self._context(events), resume)
        try:
            events.on_run_begin(self._start(command))
            for warning in self._warnings():
                events.on_warning(warning)
            self._stages(trainer, stages, resume)
            if self.keep_best is not None:
                self.keep_best.restore()
            interrupts.point("test", trainer.epoch)
            test = self._test(trainer, stages, events)
            weights_sha256 = feature_cache.weights_digest(assembled.model)
            interrupts.point("save", trainer.epoch)
            self._save_model()
        except KeyboardInterrupt:
            end = self._interrupted(trainer)
            events.on_run_end(end)
            raise self.record.unrecorded(RunInterrupted(end.error or "interrupted")) from None
        except BaseException as raised:
            exc = disk_full.recognized(raised, self.writable)  # a full disk anywhere: DiskFull
            rows: Sequence[dict[str, Any]] = trainer.history
            if isinstance(exc, disk_full.DiskFull) and self.run_dir is not None:
                exc.resumable(self.run_dir)
                rows = checkpoints.saved(self.writable, trainer.epoch, rows)[1]  # those on disk
            message = str(exc) if isinstance(exc, RunFailed) else f"{type(exc).__name__}: {exc}"
            events.on_run_end(self._end("failed", rows, message))
            self.record.unrecorded(exc)  # when writing metrics.json needed the full disk
            if exc is raised:
                raise
            raise exc from raised
        finally:
            stages.close()
            if self.keep_best is not None:
                self.keep_best.close()
        events.on_run_end(self._end("completed", trainer.history, None, test, weights_sha256))
        return RunResult(self.run_dir, prepared.counts, self.record.record.data)

    def _end(
        self,
        status: runs.RunStatus,
        history: Sequence[dict[str, Any]],
        error: str | None = None,
        test: dict[str, float] | None = None,
        weights_sha256: str | None = None,
        lost: int | None = None,
    ) -> RunEnd:
        since = self.keep_best.since if self.keep_best is not None else 1
        kept = best.kept(self.prepared.resolved.config.keep, self.monitor, history, since)
        return RunEnd(status, len(history), tuple(history), error, test, weights_sha256, kept, lost)

    def _interrupted(self, trainer: Trainer) -> RunEnd:
        """What Ctrl-C leaves: the epochs saved on disk (the checkpoint a resume takes),
        and the one lost, if any."""
        saved, history = checkpoints.saved(self.writable, trainer.epoch, trainer.history)
        lost = trainer.in_progress if trainer.in_progress and trainer.in_progress > saved else None
        where = f"{checkpoints.FOLDER}/{checkpoints.folder_name(saved)}"
        return self._end("interrupted", history, interrupts.describe(saved, lost, where), lost=lost)

    def _warnings(self) -> list[RunWarning]:
        """What a resume found damaged (:mod:`zoo.train.durability.resume`), then setups that cannot
        learn, or not well (:mod:`zoo.train.checks`)."""
        prepared = self.prepared
        config = prepared.resolved.config
        steps = pipeline.steps(self.splits.sizes.get("train"), config.batch_size)
        found = self.opened.reopened.warnings if self.opened.reopened is not None else ()
        backbone, assembled = prepared.resolved.backbone, prepared.assembled
        return [*found, *checks.warnings(backbone, assembled, config.epochs, steps)]

    def _callbacks(self) -> list[Callback]:
        """zoo's own: stopping rules first, then what writes the run directory."""
        config = self.prepared.resolved.config
        callbacks: list[Callback] = [
            EarlyStopping(config.early_stopping, self.monitor),
            TerminateOnNaN(),
        ]
        if config.lr_schedule == "plateau":
            plateau = ReduceOnPlateau(self.monitor, config.plateau_patience, config.plateau_factor)
            callbacks.append(plateau)
        # The best epoch is written before its checkpoint: a run killed between the two
        # redoes the epoch rather than forget that it was the best.
        if self.keep_best is not None:
            callbacks.append(self.keep_best)
        if self.writable is not None:
            callbacks += [Checkpointing(self.writable), TensorBoard(self.writable)]
        return [*callbacks, self.record]

    def _context(self, events: Events) -> RunContext:
        prepared = self.prepared
        return RunContext(
            config=prepared.resolved.config,
            placement=prepared.placement,
            precision=prepared.precision,
            assembled=prepared.assembled,
            splits=self.splits,
            timer=prepared.timer,
            events=events,
            cache_dir=prepared.options.cache_dir,
            cache_memory=prepared.options.cache_memory,
            cache_max=prepared.options.cache_max,
            backbone_digest=self.backbone_digest,
        )

    def _start(self, command: list[str]) -> RunStart:
        prepared = self.prepared
        weights = prepared.assembled.weights_file
        return RunStart(
            run_dir=self.run_dir,
            command=command,
            parameters=prepared.counts,
            splits=self.splits,
            devices=prepared.placement.devices,
            strategy=prepared.placement.describe(),
            precision=prepared.precision,
            weights_file={"path": weights, "sha256": file_sha256(weights)} if weights else None,
            resumed_from=(self.checkpoint.epoch if self.checkpoint else 0)
            if self.opened.reopened is not None
            else None,
            history=self.checkpoint.state.history if self.checkpoint else (),
        )

    def _stages(self, trainer: Trainer, stages: Stages, resume: checkpoints.Resume) -> None:
        if not resume.skips_head:
            self._fit(trainer, *stages.head())
        if self.prepared.resolved.config.fine_tune_epochs:
            self._fit(trainer, *stages.fine_tune())
        else:
            resume.finish()

    def _fit(self, trainer: Trainer, plan: StagePlan, start: int) -> None:
        with self.prepared.timer.phase(STAGE_PHASE[plan.stage]):
            trainer.fit(plan, start)

    def _test(self, trainer: Trainer, stages: Stages, events: Events) -> dict[str, float]:
        """The test metrics; the test predictions, scored, go to the callbacks (and a figure)."""
        model, batches = stages.test()
        figure = (self.writable or Path()) / scoring.FIGURE
        with self.prepared.timer.phase("evaluate"):
            metrics = trainer.evaluate(model, batches)
            predicted = predict_batches(model, self.prepared.placement, batches)
            with disk_full.writing("the confusion matrix", figure, lambda: 1 << 16):
                scored = scoring.evaluate_split(self.splits, "test", predicted, self.writable)
            events.on_evaluation(scored)
        return metrics

    def _save_model(self) -> None:
        """Save the trained model (backbone + head, preprocessing included, and the
        manifest that reloads it anywhere, :mod:`zoo.results.saving`): chief only."""
        if self.writable is not None:
            path, assembled = self.writable / runs.MODEL, self.prepared.assembled
            needed = disk_full.variable_bytes(assembled.model)
            with self.prepared.timer.phase("save"), disk_full.writing("the model", path, needed):
                disk_full.point("model", path)
                saving.save_trained(
                    path, assembled, self.prepared.resolved, self.splits.class_names
                )
