"""Learning-rate schedules: warm-up, cosine decay, and lowering the rate on a plateau.

Every stage has its own schedule, over its own steps and from its own rate
(``--learning-rate``, ``--fine-tune-lr``). The rate at optimizer step ``s`` (from 0) is::

    rate(s) = base x factor x warm-up(s) x shape(s)
    warm-up(s) = min(1, (s + 1) / warm-up steps)                (1 without warm-up)
    shape(s) = 1 (constant, plateau), or for cosine
               (1 + cos(pi x progress)) / 2, progress = (s - warm-up steps) / (steps - warm-up
               steps), clipped to 0..1: the rate falls from base towards 0 by the stage's end.

``factor`` is 1 but for ``plateau``, where :class:`ReduceOnPlateau` multiplies it by
``--plateau-factor`` after ``--plateau-patience`` epochs without a better ``--monitor``.

The step is the optimizer's own ``iterations``, which checkpoints save with the rest of
the optimizer, and ``factor`` is replayed from a resumed stage's history, so a resumed
run continues its schedule exactly where it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.runtime.loader import keras, tf
from zoo.train.events import Callback, EpochEnd, StageStart
from zoo.train.monitor import Improvement, Monitor

if TYPE_CHECKING:
    from zoo.config.settings import RunSettings


@dataclass(frozen=True)
class Shape:
    """A stage's schedule without its rate: what ``rate(s)`` needs besides ``base``."""

    steps: int
    warmup_steps: int = 0
    cosine: bool = False


def shape_of(settings: RunSettings, epochs: int, steps_per_epoch: int | None) -> Shape | None:
    """The schedule of a stage of ``epochs`` epochs, or ``None`` for a constant rate.

    Raises:
        ZooError: the schedule needs the number of steps and the dataset does not say
            how many training images it has.
    """
    name, warmup = settings.lr_schedule, settings.warmup_epochs
    if name == "constant" and not warmup:
        return None
    if steps_per_epoch is None:
        raise ZooError(
            f"the learning-rate schedule ({name}, {warmup} warm-up epochs) needs the number "
            "of training steps, and the dataset does not declare its split sizes.",
            expected="a dataset whose Splits.sizes has 'train'",
            fix="use --lr-schedule constant --warmup-epochs 0, or declare the sizes",
        )
    return Shape(epochs * steps_per_epoch, min(warmup, epochs) * steps_per_epoch, name == "cosine")


class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """``rate(s)`` at the optimizer's step, with a ``factor`` variable for the plateau."""

    def __init__(self, base: float, shape: Shape) -> None:
        self.base = base
        self.shape = shape
        self.factor = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="lr_factor")

    def __call__(self, step: Any) -> Any:
        step = tf.cast(step, tf.float32)
        rate = self.base * self.factor
        shape = self.shape
        if shape.warmup_steps:
            rate *= tf.minimum(1.0, (step + 1.0) / shape.warmup_steps)
        if shape.cosine:
            span = max(shape.steps - shape.warmup_steps, 1)
            progress = tf.clip_by_value((step - shape.warmup_steps) / span, 0.0, 1.0)
            rate *= 0.5 * (1.0 + tf.cos(math.pi * progress))
        return rate


def schedule(base: float, shape: Shape) -> Schedule:
    """A Keras ``LearningRateSchedule`` following ``rate(s)``, with a ``factor`` variable.

    Create it under the strategy's scope, so the variable is mirrored.
    """
    return Schedule(base, shape)


class ReduceOnPlateau(Callback):
    """Multiplies the rate by ``factor`` after ``patience`` epochs without a better
    ``monitor``; the count starts afresh after each reduction, as in Keras's callback."""

    def __init__(self, monitor: Monitor, patience: int, factor: float) -> None:
        self.monitor = monitor
        self.patience = patience
        self.factor = factor
        self.state = Improvement(monitor)
        self.schedule: Any = None
        self.current = 1.0

    def on_stage_begin(self, stage: StageStart) -> None:
        self.schedule = stage.plan.schedule
        self.state, self.current = Improvement(self.monitor), 1.0
        for row in stage.previous:
            self._count(self.monitor.value(row))
        self._apply()

    def on_epoch_end(self, epoch: EpochEnd) -> None:
        self._count(self.monitor.value(epoch.logs))
        self._apply()

    def _count(self, value: float) -> None:
        if self.state.update(value) >= self.patience:
            self.current *= self.factor
            self.state.wait = 0

    def _apply(self) -> None:
        if self.schedule is not None:
            self.schedule.factor.assign(self.current)
