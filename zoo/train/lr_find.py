"""The learning-rate range test (``zoo run --find-lr``): the rates, the stop, the suggestion,
and the batches run.

Leslie Smith's test as fastai's ``lr_find`` runs it: train from the run's starting
weights for up to ``steps`` batches while the learning rate grows exponentially from
``start`` to ``end``, record each batch's loss, and stop early once the smoothed loss
exceeds four times the lowest seen (it has diverged). The suggestion is fastai's
``valley``: the longest run of falling losses, two thirds of the way down it, which
is past the flat start and before the blow-up.

:func:`run_test` runs it for the protocol (:func:`zoo.train.protocol.find_lr`) on the
head stage's plan, as a run builds it: on cached features when the backbone is frozen, so
the test costs one extraction (none when the features are cached) and seconds of head
training; on images otherwise. The run's model is changed and thrown away: nothing is
saved but the curve and its figure (:mod:`zoo.results.lr_figure`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.model.assemble import make_optimizer
from zoo.results import lr_figure
from zoo.runtime.loader import tf
from zoo.train.durability import checkpoints
from zoo.train.loop import Loop
from zoo.train.stages import Stages

if TYPE_CHECKING:
    from zoo.train.events import StagePlan
    from zoo.train.state import Run

#: fastai's defaults: 1e-7 to 10 over 100 batches.
START, END, STEPS = 1e-7, 10.0, 100
#: The smoothing of the losses (a debiased exponential moving average, as fastai's).
BETA = 0.98
#: The test stops once the smoothed loss exceeds this many times the lowest.
DIVERGED = 4.0


def rates(start: float = START, end: float = END, steps: int = STEPS) -> list[float]:
    """``steps`` learning rates from ``start`` to ``end``, evenly spaced on a log scale."""
    if steps < 2:
        return [start]
    ratio = (end / start) ** (1 / (steps - 1))
    return [start * ratio**i for i in range(steps)]


@dataclass
class Curve:
    """What the test measured: each batch's rate, its loss and the smoothed loss."""

    rates: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    stopped: str = ""
    _average: float = field(default=0.0, init=False, repr=False)

    def add(self, rate: float, loss: float) -> bool:
        """Record a batch; ``False`` once the test should stop (diverged, or not finite)."""
        self.rates.append(rate)
        self.losses.append(loss)
        if not math.isfinite(loss):
            self.stopped = f"the loss became {loss} at learning rate {rate:.3g}"
            self.smoothed.append(loss)
            return False
        average = BETA * self._average + (1 - BETA) * loss
        self._average = average
        self.smoothed.append(average / (1 - BETA ** len(self.losses)))
        best = min(s for s in self.smoothed if math.isfinite(s))
        if self.smoothed[-1] > DIVERGED * best:
            self.stopped = f"the loss passed {DIVERGED:g}x its lowest at learning rate {rate:.3g}"
            return False
        return True

    def suggestion(self) -> float | None:
        """fastai's ``valley``: see the module's docstring; ``None`` for fewer than 3 batches."""
        losses = [s for s in self.smoothed if math.isfinite(s)]
        return None if len(losses) < 3 else self.rates[valley(losses)]

    def to_dict(self) -> dict[str, Any]:
        """As lr_find.json holds it."""
        suggested = self.suggestion()
        return {
            "suggested_learning_rate": suggested,
            "lowest_loss_at": self.rates[_lowest(self.smoothed)] if self.smoothed else None,
            "stopped": self.stopped or "it ran every batch",
            "rates": self.rates,
            "losses": self.losses,
            "smoothed": self.smoothed,
        }


def valley(losses: Sequence[float]) -> int:
    """The index fastai's ``valley`` suggests: the longest decreasing subsequence of
    ``losses``, two thirds of the way from its start to its end."""
    longest = [1] * len(losses)
    start = end = 0
    for i in range(1, len(losses)):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[end] < longest[i]:
            end, start = i, i - longest[i]
    third = (end - start) / 3
    return max(0, min(len(losses) - 1, start + int(third) + int(third / 2)))


def _lowest(values: Sequence[float]) -> int:
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    return min(finite)[1] if finite else 0


def run_test(run: Run) -> dict[str, Any]:
    """Plan the head stage as a run would (a frozen backbone's features from the cache),
    :func:`search` on it, and write the curve and its figure under ``--output/lr-find``
    (:mod:`zoo.results.lr_figure`); return what the command prints."""
    run.resume = checkpoints.Resume(None, run.assembled, run.backbone_digest)
    stages = Stages(run)
    try:
        with run.timer.phase("train"):
            curve = search(run, stages.head()[0])
    finally:
        stages.close()
    name = "-".join(choice.name for choice in run.config.choices)
    settings = {**run.config.to_dict(), "command": run.command}
    return lr_figure.write(curve.to_dict(), run.output, name, settings)


def search(run: Run, plan: StagePlan, steps: int = STEPS) -> Curve:
    """Train ``plan``'s model batch by batch at :func:`rates`, until the loss diverges.

    The optimizer is the run's (``--optimizer``, ``--weight-decay``) at a constant rate
    set before each batch; the loss is the one the run trains with (class weights and
    label smoothing included). Batches come from ``plan``'s training split, its epochs
    repeated if it has fewer than ``steps``.
    """
    config = run.config
    with run.placement.strategy.scope():
        optimizer = make_optimizer(
            config.optimizer, START, run.precision, weight_decay=config.weight_decay
        )
        optimizer.build(plan.model.trainable_variables)
    assembled = run.assembled
    loop = Loop(
        plan.model,
        assembled.loss,
        [],
        run.placement,
        optimizer,
        plan.class_weights,
        plan.training_loss,
    )
    curve = Curve()
    for rate, batch in zip(rates(START, END, steps), _batches(plan), strict=False):
        optimizer.learning_rate = rate
        loss = loop.train_epoch(tf.data.Dataset.from_tensors(batch))["loss"]
        if not curve.add(rate, loss):
            break
    return curve


def _batches(plan: StagePlan) -> Any:
    """The training split's batches, epoch after epoch, each epoch shuffled as a run's."""
    epoch = 0
    while True:
        found = False
        for batch in plan.train_batches(epoch):
            found = True
            yield batch
        if not found:
            return
        epoch += 1
