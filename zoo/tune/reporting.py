"""What a study shows while it runs: a line per trial, not a run's report per trial.

Trials are many and alike, so their runs are not reported as ``zoo run`` reports one:
feature extraction, the slow part, shows its progress; a warning is shown the first
time its kind occurs in the study; each trial ends with one line.
"""

from __future__ import annotations

from zoo import console
from zoo.console import tuning
from zoo.train import events
from zoo.train.reporter import ExtractionProgress
from zoo.tune.search import Shown
from zoo.tune.space import Draw
from zoo.tune.trial import Outcome


class ConsoleShown(Shown, ExtractionProgress):
    """``zoo tune`` on the console."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.warned: set[str] = set()

    def on_warning(self, warning: events.RunWarning) -> None:
        if warning.code not in self.warned:
            self.warned.add(warning.code)
            console.warning(f"{warning.message} Fix: {warning.fix}.")

    def trial_ended(
        self, number: int, done: str, draw: Draw, outcome: Outcome | None, error: str | None
    ) -> None:
        label = " ".join(
            [draw.backbone, draw.head, tuning.settings_text(draw.settings), *draw.sets]
        )
        if outcome is None:
            tuning.trial(number, done, label, None, self.metric, None, f"failed: {error}")
            return
        note = outcome.pruned
        tuning.trial(number, done, label, outcome.value, self.metric, outcome.seconds, note)

    def repeated(self, number: int, seed_offset: int, value: float | None) -> None:
        reached = f"{self.metric} {value:.4f}" if value is not None else "no value"
        console.status(f"repeat of trial {number} with seed +{seed_offset}: {reached}")
