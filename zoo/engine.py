"""Running an experiment: placement, model, data, training stages, evaluation, records.

A run has up to two stages. ``head`` trains the head with the backbone as the
backbone component built it (frozen, for pretrained backbones); when the backbone is
frozen, the head trains on cached backbone features. ``fine_tune`` (optional) unfreezes
the top of the backbone and trains the whole model on images with a lower learning
rate. After every epoch the chief writes a checkpoint and metrics.json, so a run
stopped by Ctrl-C or SIGKILL resumes with ``zoo run --resume RUN_DIR``.
"""

from __future__ import annotations

import datetime as _dt
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import _tf, checkpoints, console, data, runs, saving
from zoo import features as feature_cache
from zoo.components import Splits
from zoo.errors import RunFailed, ZooError
from zoo.loop import Loop, NonFiniteLoss
from zoo.model import (
    Assembled,
    build_model,
    build_splits,
    make_optimizer,
    parameter_counts,
    summary_rows,
)
from zoo.record import Record, Timer, file_sha256
from zoo.runconfig import Resolved, check_classes


@dataclass(frozen=True)
class EngineOptions:
    """How to run, as opposed to what (which is the ``RunConfig``).

    Args:
        strategy: ``auto``, ``default``, ``mirrored`` or ``multiworker``.
        precision: ``auto``, ``float32``, ``mixed_float16`` or ``mixed_bfloat16``.
        cache_dir: Where cached features persist (default: ``~/.cache/zoo/features``).
        cache_memory: Bytes of features kept in memory; the rest is read from disk.
    """

    strategy: str = "auto"
    precision: str = "auto"
    cache_dir: Path | None = None
    cache_memory: int = feature_cache.DEFAULT_MEMORY_BUDGET


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
) -> RunResult:
    """Build, train and evaluate ``resolved``; write a new run directory under ``output``.

    Args:
        resume: An interrupted run's directory to continue (``zoo run --resume``).

    Raises:
        ZooError: a user error (data missing, bad combination) before training starts.
        RunFailed: training stopped on a NaN loss; the run directory says so.
        KeyboardInterrupt: Ctrl-C; finished epochs are saved and the run is resumable.
    """
    _tf.load()
    import keras

    previous_policy = keras.mixed_precision.global_policy()
    experiment = _Experiment(resolved, options or EngineOptions())
    try:
        experiment.setup()
        counts = experiment.build()
        if dry_run:
            return RunResult(None, counts)
        experiment.load_data()
        experiment.open(output, list(command or sys.argv), resume)
        metrics = experiment.execute()
        return RunResult(experiment.run_dir, counts, metrics)
    finally:
        experiment.close()
        keras.mixed_precision.set_global_policy(previous_policy)


class _Experiment:
    def __init__(self, resolved: Resolved, options: EngineOptions) -> None:
        self.resolved = resolved
        self.config = resolved.config
        self.options = options
        self.timer = Timer()
        self.epoch = 0  # completed epochs, over all stages
        self.run_dir: Path | None = None
        self.record: Record | None = None
        self.splits: Splits | None = None
        self.checkpoint: checkpoints.Checkpoint | None = None
        self.cache: feature_cache.FeatureCache | None = None
        self.writers: dict[str, Any] = {}
        self._digest: str | None = None  # of the backbone's weights, once computed

    # --- setting up ----------------------------------------------------------------

    def setup(self) -> None:
        import keras
        import tensorflow as tf

        from zoo.distribute import choose_precision, place

        self.placement = place(self.options.strategy)
        self.precision = choose_precision(self.options.precision, self.placement)
        keras.mixed_precision.set_global_policy(self.precision)
        keras.utils.set_random_seed(self.config.seed)
        if not tf.config.list_physical_devices("GPU"):
            # Identical metrics for identical seeds; on a GPU it would cost speed.
            tf.config.experimental.enable_op_determinism()
        devices = [d.name for d in tf.config.list_logical_devices()]
        console.devices(devices, self.placement.describe(), self.precision)

    def build(self) -> dict[str, int]:
        num_classes = self._known_classes()
        if num_classes is None:
            self.load_data()
            num_classes = self.splits.num_classes
        with self.timer.phase("build"), self.placement.strategy.scope():
            self.assembled: Assembled = build_model(self.resolved, num_classes)
        if self.config.fine_tune_epochs:
            from zoo.finetune import check

            check(self.assembled.backbone, self.config.fine_tune_layers)
        self.counts = parameter_counts(self.assembled.model)
        model = self.assembled.model
        console.model_summary(model.name, summary_rows(model), self.counts)
        return self.counts

    def _known_classes(self) -> int | None:
        dataset = self.resolved.dataset.component
        if dataset.class_names is None:  # type: ignore[attr-defined]
            return None
        return len(dataset.class_names(self.config.dataset.params))  # type: ignore[attr-defined]

    def load_data(self) -> None:
        if self.splits is not None:
            return
        with self.timer.phase("data"):
            self.splits = build_splits(self.resolved)
        check_classes(self.resolved.head, self.resolved.dataset.name, self.splits.num_classes)
        if self.splits.skipped:
            name = self.resolved.dataset.name
            console.warning(f"dataset '{name}': skipped {self.splits.skipped} unreadable files")

    def open(self, output: Path, command: list[str], resume: Path | None) -> None:
        """Create (or reopen, to resume) the run directory and its record."""
        previous = None
        if resume is not None:
            self.checkpoint = checkpoints.latest(resume)
            metrics = resume / runs.METRICS
            previous = runs.read_json(metrics) if metrics.is_file() else {}
            if previous.get("status") == "completed":
                raise ZooError(
                    f"the run {resume} is already completed; there is nothing to resume.",
                    expected="a run that was interrupted or killed",
                    fix="start a new run with the same settings: zoo run --recipe ... or names",
                    got=str(resume),
                )
            self.run_dir = resume
        elif self.placement.is_chief:
            name = "-".join(c.name for c in self.config.choices)
            self.run_dir = runs.new_run_dir(output, name)
            config = {**self.config.to_dict(), "command": command}
            runs.write_json(self.run_dir / runs.CONFIG, config)
        writable = self.run_dir if self.placement.is_chief else None
        self.record = Record(writable, self.resolved, previous)
        self.record.timer.seconds = {**self.record.timer.seconds, **self.timer.seconds}
        self.timer = self.record.timer
        self._describe_run(command, resumed=resume is not None)
        if self.run_dir is not None:
            console.status(f"run directory: {self.run_dir}")
        if writable is not None:
            self._open_writers(writable)

    def _describe_run(self, command: list[str], resumed: bool) -> None:
        record = self.record
        splits = self.splits
        weights = self.assembled.weights_file
        record.update(
            parameters=self.counts,
            dataset={
                "class_names": list(splits.class_names),
                "sizes": dict(splits.sizes),
                "skipped": splits.skipped,
                "version": splits.version,
            },
            devices=list(self.placement.devices),
            strategy=self.placement.describe(),
            precision=self.precision,
            weights_file={"path": weights, "sha256": file_sha256(weights)} if weights else None,
        )
        if resumed:
            self.epoch = self.checkpoint.epoch if self.checkpoint else 0
            state = self.checkpoint.state if self.checkpoint else {}
            record.data["history"] = list(state.get("history", []))
            record.data["resumed"].append(
                {"from_epoch": self.epoch, "command": command, "at": _now()}
            )
            console.status(f"resuming after epoch {self.epoch}")

    def _open_writers(self, run_dir: Path) -> None:
        import tensorflow as tf

        self.writers = {
            split: tf.summary.create_file_writer(str(run_dir / runs.LOGS / split))
            for split in ("train", "validation")
        }

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        for writer in self.writers.values():
            writer.close()

    # --- running -------------------------------------------------------------------

    def execute(self) -> dict[str, Any]:
        try:
            self._stages()
            return self._finish()
        except NonFiniteLoss as exc:
            message = (
                f"the training loss became NaN or infinite in epoch {self.epoch + 1} "
                f"(step {exc.step + 1}); training stopped and the run is marked failed. "
                f"Try a lower learning rate (now {self._learning_rate():g})."
            )
            self.record.write("failed", message)
            raise RunFailed(message) from None
        except KeyboardInterrupt:
            self.record.write("interrupted", f"interrupted after epoch {self.epoch}")
            if self.run_dir is not None:
                console.warning(
                    f"interrupted; epochs 1-{self.epoch} are saved. Resume with: "
                    f"zoo run --resume {self.run_dir}"
                )
            raise
        except BaseException as exc:
            self.record.write("failed", f"{type(exc).__name__}: {exc}")
            raise

    def _learning_rate(self) -> float:
        stage = self.record.history[-1]["stage"] if self.record.history else "head"
        return self.config.fine_tune_lr if stage == "fine_tune" else self.config.learning_rate

    def _stages(self) -> None:
        state = self.checkpoint.state if self.checkpoint else {}
        stage = state.get("stage")
        self.cached = self._use_cache()
        if stage != "fine_tune" and not (stage == "head" and state.get("stage_done")):
            self._stage_head()
        if self.config.fine_tune_epochs:
            self._stage_fine_tune()
        elif self.checkpoint is not None:  # resumed after the last epoch: only the test is left
            self._load_weights(self.checkpoint)

    def _use_cache(self) -> bool:
        return self.config.feature_cache and self.assembled.backbone_frozen

    def _stage_head(self) -> None:
        model = self.assembled.head if self.cached else self.assembled.model
        optimizer = self._optimizer(model, self.config.learning_rate)
        start = self._restore("head", optimizer)
        loop = Loop(model, self.assembled.loss, self.assembled.metrics, self.placement, optimizer)
        if self.cached:
            with self.timer.phase("extract"):
                train, validation = self._features("train"), self._features("validation")
            batch = self.config.batch_size
            train_data = lambda epoch: train.batches(batch, self._shuffle_seed(epoch))  # noqa: E731
            val_data = lambda: validation.batches(batch)  # noqa: E731
        else:
            train_data, val_data = self._image_batches()
        with self.timer.phase("train"):
            self._epochs("head", loop, optimizer, self.config.epochs, start, train_data, val_data)

    def _stage_fine_tune(self) -> None:
        from zoo.finetune import unfreeze_top

        with self.placement.strategy.scope():
            unfrozen = unfreeze_top(self.assembled.backbone, self.config.fine_tune_layers)
        console.status(f"fine-tuning: {len(unfrozen)} backbone layers unfrozen")
        self.counts = parameter_counts(self.assembled.model)
        self.record.update(fine_tune_parameters=self.counts, fine_tune_layers=unfrozen)
        self.cached = False
        optimizer = self._optimizer(self.assembled.model, self.config.fine_tune_lr)
        start = self._restore("fine_tune", optimizer)
        model = self.assembled.model
        loop = Loop(model, self.assembled.loss, self.assembled.metrics, self.placement, optimizer)
        train_data, val_data = self._image_batches()
        epochs = self.config.fine_tune_epochs
        with self.timer.phase("fine_tune"):
            self._epochs("fine_tune", loop, optimizer, epochs, start, train_data, val_data)

    def _optimizer(self, model: Any, learning_rate: float) -> Any:
        with self.placement.strategy.scope():
            optimizer = make_optimizer(self.config.optimizer, learning_rate, self.precision)
            optimizer.build(model.trainable_variables)
        return optimizer

    def _restore(self, stage: str, optimizer: Any) -> int:
        """Load the checkpoint being resumed; return the epoch of ``stage`` to start at.

        A checkpoint of ``stage`` restores the optimizer too; one of the previous stage
        (which ended there) restores only the weights, and ``stage`` starts afresh.
        """
        checkpoint, self.checkpoint = self.checkpoint, None
        if checkpoint is None:
            return 0
        if checkpoint.state.get("stage") != stage:
            self._load_weights(checkpoint)
            return 0
        checkpoints.restore(checkpoint, self._checkpointed_model(checkpoint), optimizer)
        return int(checkpoint.state.get("stage_epoch", 0))

    def _load_weights(self, checkpoint: checkpoints.Checkpoint) -> None:
        checkpoints.load_weights(checkpoint, self._checkpointed_model(checkpoint))

    def _checkpointed_model(self, checkpoint: checkpoints.Checkpoint) -> Any:
        """The model whose weights ``checkpoint`` holds: the whole model, or the head."""
        if checkpoint.state.get("weights") != "head":
            return self.assembled.model
        if checkpoint.state.get("backbone_sha256") != self._backbone_digest():
            raise ZooError(
                f"the frozen backbone built now differs from the one {self.run_dir} "
                "was trained on, so its checkpoint cannot continue.",
                expected="the same backbone weights as the interrupted run",
                fix="restore the weights file or plugin version the run used "
                "(metrics.json lists them), or start a new run",
            )
        return self.assembled.head

    def _backbone_digest(self) -> str:
        if self._digest is None:
            self._digest = feature_cache.weights_digest(self.assembled.backbone)
        return self._digest

    def _batches(self, split: str, seed: int | None = None) -> Any:
        """``split``'s images resized and batched; shuffled from ``seed`` when given."""
        return data.batches(
            getattr(self.splits, split),
            image_size=self.config.image_size,
            batch_size=self.config.batch_size,
            shuffle=seed is not None,
            seed=seed or 0,
            size=self.splits.sizes.get(split),
        )

    def _image_batches(self) -> tuple[Callable[[int], Any], Callable[[], Any]]:
        return (
            lambda epoch: self._batches("train", self._shuffle_seed(epoch)),
            lambda: self._batches("validation"),
        )

    def _features(self, split: str) -> feature_cache.Features:
        if self.cache is None:
            directory = self.options.cache_dir or feature_cache.default_directory()
            persistent = directory if self.placement.is_chief else None
            self.cache = feature_cache.FeatureCache(persistent, self.options.cache_memory)
            self.identity = self._cache_identity()
        key = feature_cache.cache_key(self.identity, split)

        def extract(folder: Path) -> None:
            total = data.steps(self.splits.sizes.get(split), self.config.batch_size)
            with console.TaskProgress(f"extracting features: {split}", total) as progress:
                feature_cache.extract_to(
                    folder,
                    self.assembled.features,
                    self.placement,
                    self._batches(split),
                    progress.advance,
                )

        found = self.cache.get(key, extract)
        if found.source == "cache":
            console.status(f"features: {split} from the cache ({len(found)} images)")
        used = self.record.data.setdefault("feature_cache", {})
        used[split] = {"key": key, "source": found.source}
        return found

    def _cache_identity(self) -> dict[str, Any]:
        config, splits = self.config, self.splits
        preprocessing = self.assembled.preprocessing
        layer_config = {k: v for k, v in preprocessing.get_config().items() if k != "name"}
        return {
            "dataset": {
                "name": config.dataset.qualified_name,
                "params": dict(config.dataset.params),
                "version": splits.version,
                "fingerprint": splits.fingerprint,
                "sizes": dict(splits.sizes),
            },
            "backbone": {
                "name": config.backbone.qualified_name,
                "params": dict(config.backbone.params),
                "weights": self._backbone_digest(),
            },
            "image_size": config.image_size,
            "preprocessing": [type(preprocessing).__name__, layer_config],
            "precision": self.precision,
        }

    def _epochs(
        self,
        stage: str,
        loop: Loop,
        optimizer: Any,
        epochs: int,
        start: int,
        train_data: Callable[[int], Any],
        val_data: Callable[[], Any],
    ) -> None:
        patience = self.config.early_stopping
        state = {"best": None, "wait": 0}
        previous = [r for r in self.record.history if r.get("stage", "head") == stage]
        for row in previous:
            _early_stopping_step(state, row["val_loss"])
        steps = data.steps(self._train_size(), self.config.batch_size)
        phase = "train" if stage == "head" else "fine-tune"
        with console.TrainingProgress(epochs, steps, phase=phase) as progress:
            for stage_epoch in range(start, epochs):
                progress.epoch_begin(stage_epoch)
                logs = loop.train_epoch(train_data(self.epoch), progress.batch_end)
                logs.update({f"val_{k}": v for k, v in loop.evaluate(val_data()).items()})
                progress.epoch_end(stage_epoch, logs)
                stop = patience > 0 and _early_stopping_step(state, logs["val_loss"]) >= patience
                done = stop or stage_epoch + 1 == epochs
                self._end_epoch(stage, stage_epoch + 1, logs, optimizer, done)
                if stop:
                    console.status(
                        f"early stopping: val_loss did not improve for {patience} epochs"
                    )
                    break

    def _train_size(self) -> int | None:
        return self.splits.sizes.get("train")

    def _shuffle_seed(self, epoch: int) -> int:
        """The shuffle seed of ``epoch``: a resumed run shuffles exactly as an unbroken one."""
        return self.config.seed * 100_003 + epoch

    def _end_epoch(
        self, stage: str, stage_epoch: int, logs: dict[str, float], optimizer: Any, done: bool
    ) -> None:
        self.epoch += 1
        self.record.history.append({"epoch": self.epoch, "stage": stage, **logs})
        if self.record.run_dir is not None:
            state = {
                "stage": stage,
                "stage_epoch": stage_epoch,
                "stage_done": done,
                "history": self.record.history,
            }
            weights = self.assembled.model
            if stage == "head" and self.assembled.backbone_frozen:
                # Only the head changes: a frozen ResNet50 would add ~95 MB every epoch.
                # The backbone is rebuilt from the configuration on resume, checked
                # against this digest.
                weights = self.assembled.head
                state["weights"] = "head"
                state["backbone_sha256"] = self._backbone_digest()
            checkpoints.save(self.run_dir, self.epoch, state, weights, optimizer)
            self._log_scalars(logs)
        self.record.write("running")

    def _log_scalars(self, logs: dict[str, float]) -> None:
        import tensorflow as tf

        for split, writer in self.writers.items():
            prefix = "val_" if split == "validation" else ""
            with writer.as_default():
                for name, value in logs.items():
                    if name.startswith("val_") == bool(prefix):
                        tf.summary.scalar(
                            f"epoch_{name.removeprefix(prefix)}", value, step=self.epoch - 1
                        )
            writer.flush()

    # --- finishing -----------------------------------------------------------------

    def _finish(self) -> dict[str, Any]:
        test_features = None
        if self.cached:
            with self.timer.phase("extract"):
                test_features = self._features("test")
        with self.timer.phase("evaluate"):
            test = self._evaluate_test(test_features)
        self.record.update(
            test=test, weights_sha256=feature_cache.weights_digest(self.assembled.model)
        )
        if self.record.run_dir is not None:
            with self.timer.phase("save"):
                saving.save_trained(
                    self.run_dir / runs.MODEL,
                    self.assembled,
                    self.resolved,
                    self.splits.class_names,
                )
        metrics = self.record.write("completed")
        last = self.record.history[-1] if self.record.history else {}
        console.results(
            "results",
            {
                "train": {
                    k: v for k, v in last.items() if _is_metric(k) and not k.startswith("val_")
                },
                "validation": {k[4:]: v for k, v in last.items() if k.startswith("val_")},
                "test": test,
            },
        )
        if self.run_dir is not None:
            console.out.print(f"run directory: {self.run_dir}")
        return metrics

    def _evaluate_test(self, features: feature_cache.Features | None) -> dict[str, float]:
        assembled = self.assembled
        if features is not None:
            loop = Loop(assembled.head, assembled.loss, assembled.metrics, self.placement)
            return loop.evaluate(features.batches(self.config.batch_size))
        loop = Loop(assembled.model, assembled.loss, assembled.metrics, self.placement)
        return loop.evaluate(self._batches("test"))


def _early_stopping_step(state: dict[str, Any], val_loss: float) -> int:
    """Epochs without improvement after this one (updates ``state``)."""
    if state["best"] is None or val_loss < state["best"]:
        state["best"], state["wait"] = val_loss, 0
    else:
        state["wait"] += 1
    return state["wait"]


def _is_metric(key: str) -> bool:
    return key not in ("epoch", "stage")


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")
