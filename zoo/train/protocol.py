"""The run protocol: every step of one training run, in order, in :func:`run_protocol`.

As pytest's ``runtestprotocol`` is the whole of a test, :func:`run_protocol` is the whole
of a run; a :class:`~zoo.train.state.Run` holds what its steps set up, and the steps tell
callbacks what happens (:mod:`zoo.train.events`) rather than write or print themselves.

Before it, :func:`zoo.train.engine.run` reopens a run to resume (its lock taken, its
directory checked) before TensorFlow loads. Then:

1. :func:`set_up`: the runtime checked, the placement (strategy, devices) and precision
   chosen, the run's observers built (``--track``; on the chief, not in a dry run:
   :mod:`zoo.train.observers`), the seeds set. ``on_placement``.
2. :func:`load_data`, here only when the dataset cannot tell its classes without its
   data (the head needs their number). ``on_data_loaded``.
3. :func:`build_model`: the backbone and head assembled; ``--fine-tune-layers`` checked
   against the backbone. ``on_model_built``.
4. :func:`dry_run_data`: a dry run reads the data when it is here (never downloading
   it; it says so otherwise) for its summary, and ends.
5. :func:`load_data`, unless step 2 did.
6. :func:`find_lr`, with ``--find-lr``: the learning-rate range test on the head stage's
   batches (:mod:`zoo.train.lr_find`) instead of training, and ends.
7. :func:`open_run`: a new run directory, locked, with its config.json (the chief's), or
   the one reopened.
8. :func:`attach`: the callbacks that keep the run directory join the reporter
   (stopping rules, the best epoch, checkpoints, TensorBoard, metrics.json, then the
   caller's, then the observers, then the reporter), and the trainer that tells them.
9. :func:`begin`: ``on_run_begin``, then ``on_warning`` for what a resume found damaged
   and for setups that cannot learn (:mod:`zoo.train.checks`).
10. :func:`train` the head, then fine-tune: :mod:`zoo.train.stages` plans each (a resumed
   checkpoint restored into the first that runs), the :class:`~zoo.train.trainer.Trainer`
   runs its epochs, and after each epoch the callbacks save it before the reporter
   shows it.
11. :func:`final_weights`: what the test and the saved model are: a resumed checkpoint no
   stage took (a run resumed after its last epoch), then, with ``--keep best``, the best
   epoch's weights.
12. :func:`test`: the test split evaluated and its predictions scored. ``on_evaluation``.
13. :func:`save`: model.keras and the manifest that reloads it (the chief's).
   ``EngineOptions`` may leave out both (``--no-test``; ``zoo tune``'s trials).
14. :func:`ending`: ``on_run_end`` however the run ends: completed; failed (a full disk
    anywhere is :class:`~zoo.storage.disk_full.DiskFull`, naming the run to resume); or
    interrupted by Ctrl-C (what is saved is said, and the run resumes). Last, whatever
    happened, Keras's precision policy is put back and the lock released.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoo.data import pipeline
from zoo.errors import RunFailed, RunInterrupted
from zoo.model import assemble, scoring
from zoo.results import saving
from zoo.runconfig import check_classes
from zoo.runtime import runners
from zoo.runtime.loader import keras, tf
from zoo.storage import disk_full, runs
from zoo.storage.hashing import file_sha256
from zoo.storage.runs import Stage
from zoo.train import checks, finetune, lr_find, observers
from zoo.train.callbacks import Checkpointing, EarlyStopping, RunRecord, TensorBoard, TerminateOnNaN
from zoo.train.distribute import choose_precision, place
from zoo.train.durability import best, checkpoints, interrupts, lock
from zoo.train.events import Callback, Events, RunEnd, RunStart, RunWarning
from zoo.train.features import cache as feature_cache
from zoo.train.loop import predict_batches
from zoo.train.observers import observed_run
from zoo.train.record import STAGE_PHASE, Record
from zoo.train.schedules import ReduceOnPlateau
from zoo.train.stages import Stages
from zoo.train.state import Run, RunResult
from zoo.train.trainer import Trainer


def run_protocol(run: Run) -> RunResult:
    """Train ``run`` from its set-up to its end: the steps, in the order they happen."""
    with _afterwards():
        set_up(run)
        if run.resolved.dataset.component.class_names is None:
            load_data(run)  # only the data can tell the head how many classes
        build_model(run)
        if run.dry_run:
            if not run.has_data:
                dry_run_data(run)
            return RunResult(None, run.counts)
        if not run.has_data:
            load_data(run)
        if run.find_lr:
            return find_lr(run)
        open_run(run)
        attach(run)
        stages = Stages(run)
        with ending(run, stages):
            begin(run)
            train(run, stages, "head")
            train(run, stages, "fine_tune")
            final_weights(run)
            test(run, stages)
            save(run)
        return RunResult(run.run_dir, run.counts, run.record.record.data)


def set_up(run: Run) -> None:
    """Check the runtime asked for, choose where to train and at which precision, seed."""
    config = run.config
    runners.check(config.runtime, config.runtime_precision)
    run.placement = place(run.options.strategy, run.events.on_warning)
    run.observers = _observers(run)
    run.events = Events([*run.observers, run.reporter])
    run.precision = choose_precision(run.options.precision, run.placement)
    keras.mixed_precision.set_global_policy(run.precision)
    keras.utils.set_random_seed(config.seed)
    if not tf.config.list_physical_devices("GPU"):
        # Identical metrics for identical seeds; on a GPU it would cost speed.
        tf.config.experimental.enable_op_determinism()
    devices = [d.name for d in tf.config.list_logical_devices()]
    run.events.on_placement(devices, run.placement.describe(), run.precision)


def load_data(run: Run) -> None:
    """Build the dataset's splits, and check their classes against the head."""
    with run.timer.phase("data"):
        run.splits = assemble.build_splits(run.resolved)
    check_classes(run.resolved, run.splits.num_classes)
    run.events.on_data_loaded(run.resolved.dataset.name, run.splits)


def dry_run_data(run: Run) -> None:
    """``--dry-run``: the data summary when the data is here; never a download.

    A dataset whose declared files are missing (cats_vs_dogs before its archive is
    fetched) is left unread, and the run says so.
    """
    from zoo.downloads.readiness import Target, needs

    dataset = run.resolved.dataset
    found = needs(Target(dataset, dict(run.config.dataset.params)))
    if found.readiness == "ready":
        load_data(run)
        return
    summary = found.summary()
    why = ", ".join(summary["missing"]) or summary["reason"]
    message = (
        f"dry run: the data summary is left out: {dataset.name}'s files may not be "
        f"here ({why}), and a dry run downloads nothing"
    )
    fix = f"zoo fetch {dataset.name} downloads them; a run without --dry-run does too"
    run.events.on_warning(RunWarning("data_not_here", message, fix))


def build_model(run: Run) -> None:
    """Assemble the backbone and the head under the strategy; check the fine-tuning spec."""
    config, dataset = run.config, run.resolved.dataset.component
    if run.has_data or dataset.class_names is None:
        num_classes = run.splits.num_classes
    else:
        num_classes = len(dataset.class_names(config.dataset.params))
    with run.timer.phase("build"), run.placement.strategy.scope():
        run.assembled = assemble.build_model(run.resolved, num_classes)
    if config.fine_tune_epochs:
        finetune.check(run.assembled.backbone, config.fine_tune_layers, config.backbone.name)
    run.counts = assemble.parameter_counts(run.assembled.model)
    rows = assemble.summary_rows(run.assembled.model)
    run.events.on_model_built(run.assembled.model.name, rows, run.counts)


def find_lr(run: Run) -> RunResult:
    """``--find-lr``: the range test instead of training; no run directory is made."""
    return RunResult(None, run.counts, {"lr_find": lr_find.run_test(run)})


def open_run(run: Run) -> None:
    """The run directory: the one reopened, or a new one, locked, with its config.json
    (the chief's; other workers that do not resume have none)."""
    if run.reopened is not None:
        run.run_dir = run.reopened.run_dir
    elif not run.placement.is_chief:
        run.run_dir = None
    else:
        config, output = run.config, run.output
        settings = {**config.to_dict(), "command": run.command}
        with disk_full.writing("a new run directory and its config.json", output, lambda: 65536):
            run.run_dir = lock.new_run_dir(output, _name(run), settings)
    run.writable = run.run_dir if run.placement.is_chief else None


def attach(run: Run) -> None:
    """zoo's callbacks join the caller's and the reporter; the trainer tells them all."""
    reopened, config = run.reopened, run.config
    previous = reopened.previous if reopened is not None else {}
    record = Record(run.writable, run.resolved, previous, run.timer)
    run.record = RunRecord(record, functools.partial(observers.said, run.observers))
    run.keep_best = None
    if config.keep == "best":
        so_far = reopened.best if reopened is not None else None
        run.keep_best = best.KeepBest(run.monitor, run.assembled, run.writable, so_far)
    watching = [*run.observers, observers.Recorded(run.record)] if run.observers else []
    run.events = Events([*_callbacks(run), *run.callbacks, *watching, run.reporter])
    for observer in run.observers:
        observer.report = run.events.on_warning
    history = run.checkpoint.state.history if run.checkpoint is not None else ()
    assembled = run.assembled
    run.trainer = Trainer(assembled.loss, assembled.metrics, run.placement, run.events, history)
    run.resume = checkpoints.Resume(run.checkpoint, assembled, run.backbone_digest)


def begin(run: Run) -> None:
    """Tell the callbacks the run begins, then warn of what cannot learn, or not well."""
    run.events.on_run_begin(_run_start(run))
    for warning in _warnings(run):
        run.events.on_warning(warning)


def train(run: Run, stages: Stages, stage: Stage) -> None:
    """Run ``stage``'s epochs, unless it has none to run (:meth:`Stages.plan`)."""
    planned = stages.plan(stage)
    if planned is not None:
        with run.timer.phase(STAGE_PHASE[stage]):
            run.trainer.fit(*planned)


def final_weights(run: Run) -> None:
    """Load what is tested and saved: a resumed checkpoint no stage took, then, with
    ``--keep best``, the best epoch."""
    run.resume.finish()
    if run.keep_best is not None:
        run.keep_best.restore()


def test(run: Run, stages: Stages) -> None:
    """The test metrics; the test predictions, scored, go to the callbacks (and a figure)."""
    if not run.options.test:
        return
    interrupts.point("test", run.trainer.epoch)
    model, batches = stages.test()
    figure = (run.writable or Path()) / scoring.FIGURE
    with run.timer.phase("evaluate"):
        run.test_metrics = run.trainer.evaluate(model, batches)
        predicted = predict_batches(model, run.placement, batches)
        with disk_full.writing("the confusion matrix", figure, lambda: 1 << 16):
            scored = scoring.evaluate_split(run.splits, "test", predicted, run.writable)
        run.events.on_evaluation(scored)


def save(run: Run) -> None:
    """Save the trained model (backbone + head, preprocessing included, and the manifest
    that reloads it anywhere, :mod:`zoo.results.saving`): chief only."""
    if not run.options.write_model:
        return
    assembled = run.assembled
    run.weights_sha256 = feature_cache.weights_digest(assembled.model)
    interrupts.point("save", run.trainer.epoch)
    if run.writable is not None:
        path, needed = run.writable / runs.MODEL, disk_full.variable_bytes(assembled.model)
        with run.timer.phase("save"), disk_full.writing("the model", path, needed):
            disk_full.point("model", path)
            saving.save_trained(path, assembled, run.resolved, run.splits.class_names)


@contextmanager
def ending(run: Run, stages: Stages) -> Iterator[None]:
    """Tell ``on_run_end`` however the run ends, and close what the stages opened.

    Ctrl-C ends it ``interrupted`` and is raised again as :class:`RunInterrupted`; any
    other exception ends it ``failed``, a full disk anywhere as ``DiskFull``.
    """
    try:
        yield
    except KeyboardInterrupt:
        end = _interrupted(run)
        run.events.on_run_end(end)
        raise run.record.unrecorded(RunInterrupted(end.error or "interrupted")) from None
    except BaseException as raised:
        failure = _failed(run, raised)
        if failure is raised:
            raise
        raise failure from raised
    finally:
        stages.close()
        if run.keep_best is not None:
            run.keep_best.close()
    history, test, digest = run.trainer.history, run.test_metrics, run.weights_sha256
    run.events.on_run_end(_end(run, "completed", history, None, test, digest))


@contextmanager
def _afterwards() -> Iterator[None]:
    """Put back Keras's precision policy, and release the run directory's lock."""
    policy = keras.mixed_precision.global_policy()
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)
        lock.release()  # the run directory, which this process trained


def _observers(run: Run) -> list[observers.Isolated]:
    """The observers ``--track`` names, built: on the chief only, and not for a dry run."""
    if not run.placement.is_chief or run.dry_run or run.find_lr:
        return []
    resume = run.reopened.run_dir if run.reopened is not None else None
    return observers.build(run.resolved, observed_run(run.resolved, run.output, resume))


def _name(run: Run) -> str:
    """``shapes-small_cnn-gap_sigmoid``: what a run directory's name says after its time."""
    return "-".join(c.name for c in run.config.choices)


def _callbacks(run: Run) -> list[Callback]:
    """zoo's own: stopping rules first, then what writes the run directory."""
    config = run.config
    callbacks: list[Callback] = [
        EarlyStopping(config.early_stopping, run.monitor),
        TerminateOnNaN(),
    ]
    if config.lr_schedule == "plateau":
        plateau = ReduceOnPlateau(run.monitor, config.plateau_patience, config.plateau_factor)
        callbacks.append(plateau)
    # The best epoch is written before its checkpoint: a run killed between the two
    # redoes the epoch rather than forget that it was the best.
    if run.keep_best is not None:
        callbacks.append(run.keep_best)
    if run.writable is not None:
        saving = [Checkpointing(run.writable)] if run.options.checkpoint else []
        callbacks += [*saving, TensorBoard(run.writable, config.flat())]
    return [*callbacks, run.record]


def _run_start(run: Run) -> RunStart:
    weights, checkpoint = run.assembled.weights_file, run.checkpoint
    resumed_from = checkpoint.epoch if checkpoint is not None else 0
    return RunStart(
        run_dir=run.run_dir,
        command=run.command,
        parameters=run.counts,
        splits=run.splits,
        devices=run.placement.devices,
        strategy=run.placement.describe(),
        precision=run.precision,
        weights_file={"path": weights, "sha256": file_sha256(weights)} if weights else None,
        resumed_from=resumed_from if run.reopened is not None else None,
        history=checkpoint.state.history if checkpoint is not None else (),
    )


def _warnings(run: Run) -> list[RunWarning]:
    """What a resume found damaged (:mod:`zoo.train.durability.resume`), then setups
    that cannot learn, or not well (:mod:`zoo.train.checks`)."""
    config = run.config
    steps = pipeline.steps(run.splits.sizes.get("train"), config.batch_size)
    found = run.reopened.warnings if run.reopened is not None else ()
    return [*found, *checks.warnings(run.resolved.backbone, run.assembled, config.epochs, steps)]


def _failed(run: Run, raised: BaseException) -> BaseException:
    """End a failed run: what is told of it, and the exception that reports it (a full
    disk anywhere becomes ``DiskFull``, naming the run to resume)."""
    failure = disk_full.recognized(raised, run.writable)
    rows: Sequence[dict[str, Any]] = run.trainer.history
    if isinstance(failure, disk_full.DiskFull) and run.run_dir is not None:
        failure.resumable(run.run_dir)
        rows = checkpoints.saved(run.writable, run.trainer.epoch, rows)[1]  # those on disk
    if isinstance(failure, RunFailed):
        message = str(failure)
    else:
        message = f"{type(failure).__name__}: {failure}"
    run.events.on_run_end(_end(run, "failed", rows, message))
    return run.record.unrecorded(failure)  # when writing metrics.json needed the full disk


def _interrupted(run: Run) -> RunEnd:
    """What Ctrl-C leaves: the epochs saved on disk (the checkpoint a resume takes),
    and the one lost, if any."""
    trainer = run.trainer
    saved, history = checkpoints.saved(run.writable, trainer.epoch, trainer.history)
    lost = trainer.in_progress if trainer.in_progress and trainer.in_progress > saved else None
    where = f"{checkpoints.FOLDER}/{checkpoints.folder_name(saved)}"
    return _end(run, "interrupted", history, interrupts.describe(saved, lost, where), lost=lost)


def _end(
    run: Run,
    status: runs.RunStatus,
    history: Sequence[dict[str, Any]],
    error: str | None = None,
    test: dict[str, float] | None = None,
    weights_sha256: str | None = None,
    lost: int | None = None,
) -> RunEnd:
    since = run.keep_best.since if run.keep_best is not None else 1
    kept = best.kept(run.config.keep, run.monitor, history, since)
    return RunEnd(status, len(history), tuple(history), error, test, weights_sha256, kept, lost)
