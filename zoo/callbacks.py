"""Keras callbacks zoo trains with. Importing this module imports Keras."""

from __future__ import annotations

import math
from typing import Any

import keras

from zoo.console import TrainingProgress


class ProgressCallback(keras.callbacks.Callback):
    """Feeds Keras' batch and epoch events to zoo's console progress display."""

    def __init__(self, progress: TrainingProgress) -> None:
        super().__init__()
        self.progress = progress

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.progress.epoch_begin(epoch)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.progress.batch_end(batch, _floats(logs))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.progress.epoch_end(epoch, _floats(logs))


class StopOnNaN(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite, and remembers it."""

    def __init__(self) -> None:
        super().__init__()
        self.failed_at: tuple[int, int] | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.failed_at = (self._epoch, batch)
            self.model.stop_training = True


def _floats(logs: dict[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (logs or {}).items()}
