"""The console reporter: shows a run's events on the terminal, as pytest's TerminalReporter does.

The one callback that talks to :mod:`zoo.console`: the engine, the trainer and the other
callbacks never print. Status and progress go to stderr; the results table and the
run directory go to stdout (stderr with ``--json``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import console
from zoo.console import reports
from zoo.data.summary import summarize
from zoo.storage.runs import Stage
from zoo.storage.sizes import format_size
from zoo.train import events

if TYPE_CHECKING:
    from zoo.components import Splits
    from zoo.model.assemble import LayerRow
    from zoo.model.scoring import Evaluation
    from zoo.runtime.runners import RuntimeChoice
    from zoo.train.features.store import Pruned
    from zoo.train.finetune import Unfrozen

#: How the progress lines name each stage's epochs.
LABELS: Mapping[Stage, str] = {"head": "train", "fine_tune": "fine-tune"}


class ExtractionProgress(events.Callback):
    """Shows feature extraction's progress: a bar on a terminal, its time when done."""

    extracting: console.TaskProgress | None = None

    def on_extract_begin(self, split: str, steps: int | None) -> None:
        self.extracting = console.TaskProgress(f"extracting features: {split}", steps)
        self.extracting.start()

    def on_extract_step(self, step: int) -> None:
        if self.extracting is not None:
            self.extracting.advance(step)

    def on_extract_end(self, split: str) -> None:
        if self.extracting is not None:
            self.extracting.stop()
            self.extracting = None


class ConsoleReporter(ExtractionProgress):
    """Prints what happens: placement, the model, progress, early stops, results."""

    def __init__(self) -> None:
        self.run_dir: Path | None = None
        self.training: console.TrainingProgress | None = None
        self.evaluation: Evaluation | None = None
        self.scheduled = False

    def on_placement(self, devices: Sequence[str], strategy: str, precision: str) -> None:
        console.devices(devices, strategy, precision)

    def on_model_built(
        self, name: str, rows: Sequence[LayerRow], counts: Mapping[str, int]
    ) -> None:
        console.model_summary(name, rows, counts)

    def on_data_loaded(self, dataset: str, splits: Splits) -> None:
        reports.data_summary(dataset, summarize(splits))

    def on_run_begin(self, run: events.RunStart) -> None:
        self.run_dir = run.run_dir
        if run.resumed_from is not None:
            console.status(f"resuming after epoch {run.resumed_from}")
        if run.run_dir is not None:
            console.status(f"run directory: {run.run_dir}")

    def on_warning(self, warning: events.RunWarning) -> None:
        console.warning(f"{warning.message} Fix: {warning.fix}.")

    def on_runtime(self, choice: RuntimeChoice) -> None:
        console.status(choice.describe())

    def on_features(self, split: str, key: str, source: str, count: int) -> None:
        if source == "cache":
            console.status(f"features: {split} from the cache ({count} images)")

    def on_cache_pruned(self, pruned: Pruned) -> None:
        console.status(_pruned_line(pruned))

    def on_fine_tune_unfrozen(self, unfrozen: Unfrozen, counts: Mapping[str, int]) -> None:
        console.status(f"fine-tuning: {unfrozen.describe()}")

    def on_stage_begin(self, stage: events.StageStart) -> None:
        plan = stage.plan
        self.scheduled = plan.schedule is not None
        self.training = console.TrainingProgress(plan.epochs, plan.steps, LABELS[plan.stage])
        self.training.start()

    def on_epoch_begin(self, epoch: events.EpochStart) -> None:
        if self.training is not None:
            self.training.epoch_begin(epoch.stage_epoch)

    def on_train_batch_end(self, step: int, logs: Mapping[str, float]) -> None:
        if self.training is not None:
            self.training.batch_end(step, logs)

    def on_epoch_end(self, epoch: events.EpochEnd) -> None:
        if self.training is not None:
            rate = epoch.history[-1].get("learning_rate")
            note = f"  lr {rate:.3g}" if self.scheduled and rate is not None else ""
            self.training.epoch_end(epoch.stage_epoch, epoch.logs, note)

    def on_stage_end(self, stage: Stage, stopped: str | None) -> None:
        self._stop_progress()
        if stopped is not None:
            console.status(stopped)

    def on_evaluation(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation

    def on_run_end(self, end: events.RunEnd) -> None:
        self._stop_progress()
        if end.status == "interrupted" and self.run_dir is not None:
            console.warning(f"{end.error}. Resume with: zoo run --resume {self.run_dir}")
        if end.status == "completed":
            self._results(end)

    def _stop_progress(self) -> None:
        """End live displays; an extraction cut short does not say it is done."""
        if self.training is not None:
            self.training.stop()
            self.training = None
        if self.extracting is not None:
            self.extracting.stop(done=False)
            self.extracting = None

    def _results(self, end: events.RunEnd) -> None:
        kept = end.kept or {}
        metrics = {k: v for k, v in kept.get("metrics", {}).items() if k != "learning_rate"}
        if kept:
            console.status(_kept_line(kept))
        console.results(
            f"results (epoch {kept['epoch']})" if kept else "results",
            {
                "train": {k: v for k, v in metrics.items() if not k.startswith("val_")},
                "validation": {k[4:]: v for k, v in metrics.items() if k.startswith("val_")},
                "test": dict(end.test or {}),
            },
        )
        if self.evaluation is not None:
            reports.evaluation(self.evaluation)
        if self.run_dir is not None:
            console.run_directory(self.run_dir)


def _kept_line(kept: Mapping[str, Any]) -> str:
    """``kept epoch 3 of 5: the best val_loss (0.2311); the saved model and the test
    metrics are that epoch's``."""
    monitor, value, best = kept["monitor"], kept["value"], kept["best_epoch"]
    which = f"epoch {kept['epoch']} of {kept['of_epochs']}"
    since = kept.get("since", 1)
    if kept["keep"] == "best" and since > 1:  # the earlier best epoch's weights were lost
        text = (
            f"kept {which}: the best {monitor} of epochs {since}-{kept['of_epochs']} ({value:.4f})"
        )
    elif kept["keep"] == "best":
        text = f"kept {which}: the best {monitor} ({value:.4f})"
    else:
        text = f"kept the last epoch, {which}"
        if best is not None and best != kept["epoch"]:
            text += f"; the best {monitor} was epoch {best} (--keep best keeps that one)"
    return text + "; the saved model and the test metrics are that epoch's"


def _pruned_line(pruned: Pruned) -> str:
    """``feature cache: removed 2 least recently used entries (1.2 GB) to keep under
    10.0 GB``, and what is kept when it cannot get under."""
    limit = format_size(pruned.max_size)
    parts = []
    if pruned.removed:
        count = len(pruned.removed)
        entries = "entry" if count == 1 else "entries"
        parts.append(
            f"removed {count} least recently used {entries} ({format_size(pruned.freed)}) "
            f"to keep under {limit}"
        )
    if pruned.over:
        parts.append(
            f"{format_size(pruned.size)} is over its {limit} limit: entries in use are kept "
            "(--feature-cache-max, or [cache] max_size in registry.toml, sets it)"
        )
    return "feature cache: " + "; ".join(parts)
