"""The trainer: runs a stage epoch by epoch and tells the callbacks what happens.

It knows nothing of files, screens or stopping rules: each epoch it trains, evaluates,
asks the callbacks whether the stage should stop, adds the epoch to the history and
announces it (:mod:`zoo.train.events`), holding a Ctrl-C until the callbacks have saved
it (:mod:`zoo.train.durability.interrupts`). Checkpoints, metrics.json, TensorBoard, early
stopping, the NaN stop and the progress display are callbacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from zoo.model.assemble import swap_average
from zoo.runtime.loader import keras, tf
from zoo.train.durability import interrupts
from zoo.train.events import EpochEnd, EpochStart, Events, Row, StagePlan, StageStart
from zoo.train.loop import Loop

if TYPE_CHECKING:
    from zoo.train.distribute import Placement


class Trainer:
    """Trains stages of one run with the head's loss and metrics.

    Args:
        loss: The head's Keras loss.
        metrics: The head's Keras metrics.
        placement: Where to run.
        events: Who hears what happens.
        history: The epochs finished before (a resumed run's), one row each.
    """

    def __init__(
        self,
        loss: Any,
        metrics: Sequence[Any],
        placement: Placement,
        events: Events,
        history: Sequence[Row] = (),
    ) -> None:
        self.loss = loss
        self.metrics = list(metrics)
        self.placement = placement
        self.events = events
        self.history: list[Row] = list(history)
        #: The epoch training now, until it is saved (over all stages).
        self.in_progress: int | None = None

    @property
    def epoch(self) -> int:
        """Epochs finished, over all stages."""
        return len(self.history)

    def fit(self, plan: StagePlan, start: int = 0) -> None:
        """Run ``plan``'s epochs from ``start`` (the stage's epochs already finished).

        With an optimizer that keeps a moving average of the weights (``--ema``), the
        average is swapped into the model after each epoch trains: it is validated and
        saved (best epoch, checkpoint), then swapped out again, except after the stage's
        last epoch, which leaves it in the model, as Keras's ``finalize_variable_values``.
        """
        loop = Loop(
            plan.model,
            self.loss,
            self.metrics,
            self.placement,
            plan.optimizer,
            plan.class_weights,
            plan.training_loss,
        )
        previous = tuple(row for row in self.history if row.get("stage", "head") == plan.stage)
        self.events.on_stage_begin(StageStart(plan, start, previous))
        stopped = None
        for stage_epoch in range(start + 1, plan.epochs + 1):
            epoch = self.in_progress = self.epoch + 1
            self.events.on_epoch_begin(EpochStart(plan.stage, stage_epoch, epoch))
            interrupts.point("epoch.begin", epoch)
            rate = _learning_rate(plan.optimizer)
            logs = loop.train_epoch(plan.train_batches(self.epoch), self.events.on_train_batch_end)
            interrupts.point("epoch.validate", epoch)
            averaged = swap_average(plan.optimizer)
            logs.update({f"val_{k}": v for k, v in loop.evaluate(plan.val_batches()).items()})
            stopped = self.events.should_stop(plan.stage, logs)
            interrupts.point("epoch.end", epoch)
            done = stopped is not None or stage_epoch == plan.epochs
            # Saved whole: a Ctrl-C while the callbacks save the epoch waits for them.
            with interrupts.deferred():
                row = {"epoch": epoch, "stage": plan.stage, **logs, "learning_rate": rate}
                self.history.append(row)
                end = EpochEnd(plan.stage, stage_epoch, epoch, logs, done, tuple(self.history))
                self.events.on_epoch_end(end)
                if averaged and not done:
                    swap_average(plan.optimizer)  # training goes on from the trained weights
                self.in_progress = None
            if stopped is not None:
                break
        self.events.on_stage_end(plan.stage, stopped)

    def evaluate(self, model: keras.Model, batches: tf.data.Dataset) -> dict[str, float]:
        """Loss and metrics of ``model`` over ``batches``, in inference mode."""
        return Loop(model, self.loss, self.metrics, self.placement).evaluate(batches)


def _learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The rate the next step will use (a schedule moves it every step), to float32's
    precision: about 7 significant digits, so 1e-3 reads as 0.001."""
    rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    return float(f"{rate:.7g}")
