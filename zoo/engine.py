"""Running an experiment: data, model, training, evaluation, and the run directory."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import _tf, console, runs
from zoo.components import Splits
from zoo.errors import RunFailed
from zoo.model import (
    Assembled,
    build_model,
    build_splits,
    compile_model,
    parameter_counts,
    summary_rows,
)
from zoo.runconfig import Resolved, check_classes


@dataclass
class RunResult:
    """What a run produced. ``run_dir`` is ``None`` for a dry run."""

    run_dir: Path | None
    parameters: dict[str, int]
    metrics: dict[str, Any] = field(default_factory=dict)


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def run(
    resolved: Resolved,
    *,
    output: Path = Path("runs"),
    dry_run: bool = False,
    command: Sequence[str] | None = None,
) -> RunResult:
    """Build, train and evaluate ``resolved``; write a new run directory under ``output``.

    Raises:
        ZooError: a user error (data missing, bad combination) before training starts.
        RunFailed: training stopped on a NaN loss; the run directory says so.
    """
    _tf.load()
    import keras
    import tensorflow as tf

    config = resolved.config
    timer = _Timer()
    keras.utils.set_random_seed(config.seed)
    console.devices([d.name for d in tf.config.list_physical_devices()], "default (one device)")

    splits = None
    num_classes = _known_classes(resolved)
    if num_classes is None:
        with timer.phase("data"):
            splits = _load_splits(resolved)
        num_classes = splits.num_classes
    with timer.phase("build"):
        assembled = build_model(resolved, num_classes)
    counts = parameter_counts(assembled.model)
    console.model_summary(assembled.model.name, summary_rows(assembled.model), counts)
    if dry_run:
        return RunResult(None, counts)

    if splits is None:
        with timer.phase("data"):
            splits = _load_splits(resolved)
    name = f"{config.dataset.name}-{config.backbone.name}-{config.head.name}"
    run_dir = runs.new_run_dir(output, name)
    runs.write_json(
        run_dir / runs.CONFIG, {**config.to_dict(), "command": list(command or sys.argv)}
    )
    console.status(f"run directory: {run_dir}")
    record = _Record(resolved, splits, assembled, counts, timer)
    try:
        metrics = _train_and_evaluate(resolved, splits, assembled, run_dir, record)
    except BaseException as exc:
        record.finish(run_dir, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return RunResult(run_dir, counts, metrics)


def _known_classes(resolved: Resolved) -> int | None:
    dataset = resolved.dataset.component
    if dataset.class_names is None:  # type: ignore[attr-defined]
        return None
    return len(dataset.class_names(resolved.config.dataset.params))  # type: ignore[attr-defined]


def _load_splits(resolved: Resolved) -> Splits:
    splits = build_splits(resolved)
    check_classes(resolved.head, resolved.dataset.name, splits.num_classes)
    if splits.skipped:
        console.warning(
            f"dataset '{resolved.dataset.name}': skipped {splits.skipped} unreadable files"
        )
    return splits


def _train_and_evaluate(
    resolved: Resolved, splits: Splits, assembled: Assembled, run_dir: Path, record: _Record
) -> dict[str, Any]:
    import keras

    from zoo import data
    from zoo.callbacks import ProgressCallback, StopOnNaN

    config = resolved.config

    def batches(name: str, shuffle: bool = False) -> Any:
        return data.batches(
            getattr(splits, name),
            image_size=config.image_size,
            batch_size=config.batch_size,
            shuffle=shuffle,
            seed=config.seed,
            size=splits.sizes.get(name),
        )

    compile_model(assembled, config.optimizer, config.learning_rate)
    nan = StopOnNaN()
    steps = data.steps(splits.sizes.get("train"), config.batch_size)
    with console.TrainingProgress(config.epochs, steps) as progress, record.timer.phase("train"):
        history = assembled.model.fit(
            batches("train", shuffle=True),
            validation_data=batches("validation"),
            shuffle=False,
            epochs=config.epochs,
            callbacks=[
                ProgressCallback(progress),
                nan,
                keras.callbacks.TensorBoard(log_dir=str(run_dir / runs.LOGS), write_graph=False),
            ],
            verbose=0,
        )
    record.history = history.history
    if nan.failed_at is not None:
        epoch, batch = nan.failed_at
        message = (
            f"the training loss became NaN at epoch {epoch + 1}, batch {batch + 1}; "
            f"training stopped. Try a lower --learning-rate (now {config.learning_rate:g})."
        )
        record.finish(run_dir, status="failed", error=message)
        raise RunFailed(message)
    with record.timer.phase("evaluate"):
        test = assembled.model.evaluate(batches("test"), verbose=0, return_dict=True)
    record.test = {k: float(v) for k, v in test.items()}
    with record.timer.phase("save"):
        assembled.model.save(run_dir / runs.MODEL)
    metrics = record.finish(run_dir, status="completed")
    last = runs.history_rows(record.history)[-1] if record.history else {}
    console.results(
        "results",
        {
            "train": {k: v for k, v in last.items() if k != "epoch" and not k.startswith("val_")},
            "validation": {k[4:]: v for k, v in last.items() if k.startswith("val_")},
            "test": record.test,
        },
    )
    console.out.print(f"run directory: {run_dir}")
    return metrics


class _Record:
    """Collects what metrics.json records, and writes it."""

    def __init__(
        self,
        resolved: Resolved,
        splits: Splits,
        assembled: Assembled,
        counts: dict[str, int],
        timer: _Timer,
    ) -> None:
        self.resolved = resolved
        self.splits = splits
        self.assembled = assembled
        self.counts = counts
        self.timer = timer
        self.history: dict[str, list[float]] = {}
        self.test: dict[str, float] = {}

    def finish(self, run_dir: Path, status: str, error: str | None = None) -> dict[str, Any]:
        import tensorflow as tf

        config = self.resolved.config
        packages = {
            e.plugin.package
            for e in (self.resolved.dataset, self.resolved.backbone, self.resolved.head)
        }
        metrics = {
            "status": status,
            "error": error,
            "history": runs.history_rows(self.history),
            "test": self.test,
            "parameters": self.counts,
            "timings": self.timer.seconds,
            "seed": config.seed,
            "dataset": {
                "class_names": list(self.splits.class_names),
                "sizes": dict(self.splits.sizes),
                "skipped": self.splits.skipped,
                "version": self.splits.version,
            },
            "devices": [d.name for d in tf.config.list_physical_devices()],
            "weights_file": self.assembled.weights_file,
            "versions": runs.library_versions(sorted(packages - {"zoo", "local"})),
        }
        runs.write_json(run_dir / runs.METRICS, metrics)
        return metrics
