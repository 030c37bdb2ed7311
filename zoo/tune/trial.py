"""One ``zoo tune`` trial: a real zoo run, pruned on its per-epoch validation metric.

The run is :func:`zoo.train.engine.run` with the trial's settings. It writes its own run
directory (config.json, metrics.json, TensorBoard logs, the best epoch's weights) but
neither a checkpoint per epoch (a trial a killed process leaves is run again, not
resumed), nor a model (only the winner's final run writes one), nor a test score: the
test split must not choose. A frozen backbone's features come from the feature cache,
so after its first trial a backbone's trials cost only their head's training.

After each trial Keras's global state is cleared, so memory stays flat over a long study.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.runconfig import Resolved
from zoo.storage.runs import Stage
from zoo.train.engine import EngineOptions
from zoo.train.engine import run as run_engine
from zoo.train.events import Callback
from zoo.tune import latency

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Outcome:
    """What a trial gives the study.

    Args:
        value: The study's metric at the kept epoch (``None``: the run has no epoch).
        pruned: Why the pruner stopped it, if it did.
        run_dir: Its run directory.
        seconds: Its wall time.
        epochs: Epochs trained.
    """

    value: float | None
    pruned: str | None
    run_dir: Path | None
    seconds: float
    epochs: int
    latency_ms: float | None = None
    size_mb: float | None = None
    test: dict[str, Any] | None = None


class Pruning(Callback):
    """Reports the metric to Optuna after every epoch; stops the run when the pruner says
    the trial is weaker than the others were at that epoch."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.step = 0
        self.pruned: str | None = None

    def should_stop(self, stage: Stage, logs: Mapping[str, float]) -> str | None:
        if self.pruned is not None:  # a pruned trial does not go on to fine-tune
            return self.pruned
        self.step += 1
        value = logs.get(self.metric)
        if value is None:
            return None
        self.trial.report(float(value), self.step)
        if self.trial.should_prune():
            self.pruned = f"pruned after epoch {self.step}: {self.metric} {value:.4g}"
        return self.pruned


def run_trial(
    resolved: Resolved,
    *,
    folder: Path,
    metric: str,
    options: EngineOptions,
    reporter: Callback,
    trial: optuna.Trial | None = None,
    command: Sequence[str] = (),
    final: bool = False,
) -> Outcome:
    """Run ``resolved`` as a trial (or, ``final``, the winner's run: tested, its model
    written) into ``folder``; report each epoch to ``trial`` when given."""
    started = time.perf_counter()
    registered = _custom_gradients()
    pruning = [Pruning(trial, metric)] if trial is not None else []
    how = (
        options
        if final
        else dataclasses.replace(options, test=False, write_model=False, checkpoint=False)
    )
    try:
        result = run_engine(
            resolved,
            output=folder,
            options=how,
            command=list(command),
            callbacks=pruning,
            reporter=reporter,
        )
    finally:
        _forget(registered)
    seconds = time.perf_counter() - started
    record = result.metrics
    kept = record.get("kept") or {}
    value = kept.get("metrics", {}).get(metric)
    parameters = result.parameters.get("total")
    return Outcome(
        value=float(value) if value is not None else None,
        pruned=pruning[0].pruned if pruning else None,
        run_dir=result.run_dir,
        seconds=seconds,
        epochs=len(record.get("history", ())),
        latency_ms=latency.measured(resolved, len(record["dataset"]["class_names"])),
        size_mb=parameters * 4 / 1e6 if parameters else None,
        test=record.get("test") or None,
    )


def _forget(registered: set[str]) -> None:
    """Clear what Keras and TensorFlow keep of a finished run, so the next trial starts
    from nothing and memory stays flat over a study.

    Besides Keras's session, the custom gradients the run's traced steps registered go:
    every ``all_reduce`` (Keras's optimizer sums gradients with one, on one device too)
    registers one in TensorFlow's global gradient registry when traced, and TensorFlow
    never removes it; the function it holds keeps the step's whole graph alive, 15 to
    40 MB a trial (bench 9 measured +107% resident memory over 100 trials). The run's
    graphs are gone once it ends, so nothing can ask for those gradients again.
    """
    from zoo.runtime.loader import keras

    found = _gradient_registry()
    for name in set(found) - registered:
        if name.startswith(_CUSTOM_GRADIENT):
            del found[name]
    keras.backend.clear_session(free_memory=True)  # and one garbage collection, after


#: How TensorFlow names the gradients ``tf.custom_gradient`` registers while tracing.
_CUSTOM_GRADIENT = "CustomGradient-"


def _gradient_registry() -> dict[str, Any]:
    """TensorFlow's registry of gradient functions by op type name (private: an empty
    dict, and nothing removed, if a TensorFlow version no longer has it)."""
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else {}


def _custom_gradients() -> set[str]:
    return {name for name in _gradient_registry() if name.startswith(_CUSTOM_GRADIENT)}


def summary(outcome: Outcome) -> dict[str, Any]:
    """A trial's outcome as the study keeps it (its user attributes)."""
    return {
        "run_dir": str(outcome.run_dir) if outcome.run_dir else None,
        "seconds": round(outcome.seconds, 3),
        "epochs": outcome.epochs,
        "pruned": outcome.pruned,
        "latency_ms": outcome.latency_ms,
        "size_mb": outcome.size_mb,
    }
