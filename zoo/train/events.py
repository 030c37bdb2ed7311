"""What happens during a run, as events, and the :class:`Callback` that reacts to them.

The run protocol (:mod:`zoo.train.protocol`) and the trainer only say what happens;
callbacks do the rest: write checkpoints and metrics.json, log to TensorBoard, stop a
stage early, stop on a NaN loss, show progress. This is how Keras's ``fit`` calls its
callbacks and pytest's runner calls its terminal reporter. Events arrive in this order::

    on_placement, on_model_built, on_data_loaded          (setting up, also a dry run:
                                                            told to the reporter alone)
    on_run_begin                                           (the run directory is open)
      on_warning...                                        (setups that cannot learn)
      on_runtime                                           (before the first features)
      on_extract_begin, on_extract_step..., on_extract_end, on_features   (per split)
      on_cache_pruned                                      (after storing, if pruned)
      on_fine_tune_unfrozen                                (before the fine-tuning stage)
      on_stage_begin
        on_epoch_begin, on_train_batch_end..., should_stop, on_epoch_end   (per epoch)
      on_stage_end
    on_evaluation                                          (the test split's predictions scored)
    on_run_end                                             (completed, failed, interrupted)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec

from zoo.storage.runs import RunStatus, Stage

if TYPE_CHECKING:
    from zoo.components import Splits
    from zoo.model.assemble import LayerRow
    from zoo.model.scoring import Evaluation
    from zoo.runtime.runners import RuntimeChoice
    from zoo.train.features.store import Pruned
    from zoo.train.finetune import Unfrozen

#: One epoch of metrics.json's history: ``{"epoch": 3, "stage": "head", "loss": ...}``.
Row = dict[str, Any]


@dataclass(frozen=True)
class StagePlan:
    """One stage, as the trainer runs it.

    Args:
        stage: Which stage.
        model: What the loop trains: the whole model, or the head alone on cached features.
        optimizer: Built on ``model``'s trainable variables.
        epochs: The stage's planned epochs.
        learning_rate: The optimizer's learning rate (for messages).
        train_batches: ``train_batches(epoch)``: the training split, shuffled for
            ``epoch`` (counted over all stages from 0), batched.
        val_batches: The validation split, batched.
        steps: Training batches per epoch, when known.
        checkpointed: What a checkpoint of this stage holds: the whole model, or the head
            alone when the backbone is frozen.
        backbone_sha256: With the head alone, the frozen backbone's weights digest.
        schedule: The learning-rate schedule the optimizer follows
            (:class:`zoo.train.schedules.Schedule`), or ``None`` for a constant rate.
        class_weights: Each class's weight in the training loss, or ``None`` (all 1).
        training_loss: The loss training minimises when it is not the head's (labels
            smoothed, ``--label-smoothing``); ``None``: the head's. Validation and the
            test use the head's.
    """

    stage: Stage
    model: Any
    optimizer: Any
    epochs: int
    learning_rate: float
    train_batches: Callable[[int], Any]
    val_batches: Callable[[], Any]
    steps: int | None
    checkpointed: Any
    backbone_sha256: str | None = None
    schedule: Any = None
    class_weights: tuple[float, ...] | None = None
    training_loss: Any = None


@dataclass(frozen=True)
class RunStart:
    """A run directory is open (``run_dir`` is ``None`` on a worker that is not the chief)."""

    run_dir: Path | None
    command: Sequence[str]
    parameters: Mapping[str, int]
    splits: Splits
    devices: Sequence[str]
    strategy: str
    precision: str
    weights_file: Mapping[str, str] | None
    resumed_from: int | None = None
    history: tuple[Row, ...] = ()


@dataclass(frozen=True)
class StageStart:
    """A stage begins at ``start`` (its epochs finished before a resume); ``previous`` are
    the history rows of this stage from before the resume."""

    plan: StagePlan
    start: int = 0
    previous: tuple[Row, ...] = ()


@dataclass(frozen=True)
class EpochStart:
    """Epoch ``stage_epoch`` of ``stage`` begins; ``epoch`` counts over all stages (1-based)."""

    stage: Stage
    stage_epoch: int
    epoch: int


@dataclass(frozen=True)
class EpochEnd:
    """An epoch has finished: its metrics, and the whole history so far.

    ``stage_done`` says the stage ends here, after its last epoch or because a callback
    stopped it (``should_stop``).
    """

    stage: Stage
    stage_epoch: int
    epoch: int
    logs: Mapping[str, float]
    stage_done: bool
    history: tuple[Row, ...]


@dataclass(frozen=True)
class RunWarning:
    """A setup that cannot learn, or not well: what is wrong and what to do.

    Args:
        code: A stable name for the problem, such as ``frozen_random_backbone``.
        message: What is wrong and what it will look like.
        fix: What to do about it.
    """

    code: str
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "fix": self.fix}


@dataclass(frozen=True)
class RunEnd:
    """How the run ended, after ``epoch`` epochs; ``test`` once it completed.

    ``kept`` says which epoch the saved model and the test metrics are
    (:meth:`zoo.train.durability.best.KeepBest.kept`). An interrupted run's ``epoch`` and
    ``history`` are what is saved; ``lost`` is the epoch that was training, if any, and
    ``error`` says both (:func:`zoo.train.durability.interrupts.describe`).
    """

    status: RunStatus
    epoch: int
    history: tuple[Row, ...]
    error: str | None = None
    test: Mapping[str, float] | None = None
    weights_sha256: str | None = None
    kept: Mapping[str, Any] | None = None
    lost: int | None = None


class Callback:
    """Reacts to a run's events; every method does nothing unless overridden."""

    def on_placement(self, devices: Sequence[str], strategy: str, precision: str) -> None:
        """The strategy and precision are chosen."""

    def on_model_built(
        self, name: str, rows: Sequence[LayerRow], counts: Mapping[str, int]
    ) -> None:
        """The model is assembled: its summary rows and parameter counts."""

    def on_data_loaded(self, dataset: str, splits: Splits) -> None:
        """The dataset's splits are built."""

    def on_run_begin(self, run: RunStart) -> None:
        """The run directory is created, or reopened to resume."""

    def on_warning(self, warning: RunWarning) -> None:
        """The run is set up in a way that cannot learn, or not well."""

    def on_runtime(self, choice: RuntimeChoice) -> None:
        """What computes the features (:mod:`zoo.runtime.runners`), and why; said once, before
        the first split's features, and again only if a later conversion fails."""

    def on_extract_begin(self, split: str, steps: int | None) -> None:
        """A frozen backbone's features of ``split`` are about to be extracted."""

    def on_extract_step(self, step: int) -> None:
        """Batch ``step`` (from 0) of the extraction is done."""

    def on_extract_end(self, split: str) -> None:
        """The extraction of ``split`` finished."""

    def on_features(self, split: str, key: str, source: str, count: int) -> None:
        """``split``'s features are ready: ``extracted`` now, or read from the ``cache``."""

    def on_cache_pruned(self, pruned: Pruned) -> None:
        """The feature cache was pruned to its size after storing new features (told
        when it removed something, or could not get under the size)."""

    def on_fine_tune_unfrozen(self, unfrozen: Unfrozen, counts: Mapping[str, int]) -> None:
        """The top of the backbone is unfrozen for fine-tuning: what was counted, and the
        model's parameter counts now."""

    def on_stage_begin(self, stage: StageStart) -> None:
        """A training stage begins."""

    def on_epoch_begin(self, epoch: EpochStart) -> None:
        """An epoch begins."""

    def on_train_batch_end(self, step: int, logs: Mapping[str, float]) -> None:
        """Training batch ``step`` (from 0) is done; ``logs`` are the epoch's metrics so far.

        Called at most every ``zoo.train.loop.REPORT_SECONDS`` and after the last batch.
        """

    def should_stop(self, stage: Stage, logs: Mapping[str, float]) -> str | None:
        """Asked after each epoch, before it is saved: a reason to end the stage, or ``None``."""
        return None

    def on_epoch_end(self, epoch: EpochEnd) -> None:
        """An epoch has finished and is in the history."""

    def on_stage_end(self, stage: Stage, stopped: str | None) -> None:
        """A stage has ended; ``stopped`` is why it ended early, if it did."""

    def on_evaluation(self, evaluation: Evaluation) -> None:
        """The trained model's test predictions are scored (its figure drawn on the chief)."""

    def on_run_end(self, end: RunEnd) -> None:
        """The run has ended, however it ended."""


#: The arguments of one event, as :class:`Callback` declares them.
P = ParamSpec("P")


def fan_out(
    event: Callable[Concatenate[Callback, P], None],
) -> Callable[Concatenate[Events, P], None]:
    """``event`` told to each callback of an :class:`Events`, in order, typed as declared.

    No callback is shielded from another: one that raises ends the event there and its
    error propagates (a NaN stop, a full disk), so later callbacks do not hear of an
    epoch that was not saved.
    """
    name = event.__name__

    def forward(events: Events, /, *args: P.args, **kwargs: P.kwargs) -> None:
        for callback in events.callbacks:
            getattr(callback, name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    forward.__doc__ = event.__doc__
    return forward


class Events(Callback):
    """Passes each event to every callback, in order (:func:`fan_out`).

    Order matters where one callback's work builds on another's: the protocol puts
    those that write (checkpoints, TensorBoard, metrics.json) before the reporter, so a
    line on the screen means the epoch is saved (:func:`zoo.train.protocol.attach`).
    """

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = tuple(callbacks)

    on_placement = fan_out(Callback.on_placement)
    on_model_built = fan_out(Callback.on_model_built)
    on_data_loaded = fan_out(Callback.on_data_loaded)
    on_run_begin = fan_out(Callback.on_run_begin)
    on_warning = fan_out(Callback.on_warning)
    on_runtime = fan_out(Callback.on_runtime)
    on_extract_begin = fan_out(Callback.on_extract_begin)
    on_extract_step = fan_out(Callback.on_extract_step)
    on_extract_end = fan_out(Callback.on_extract_end)
    on_features = fan_out(Callback.on_features)
    on_cache_pruned = fan_out(Callback.on_cache_pruned)
    on_fine_tune_unfrozen = fan_out(Callback.on_fine_tune_unfrozen)
    on_stage_begin = fan_out(Callback.on_stage_begin)
    on_epoch_begin = fan_out(Callback.on_epoch_begin)
    on_train_batch_end = fan_out(Callback.on_train_batch_end)
    on_epoch_end = fan_out(Callback.on_epoch_end)
    on_stage_end = fan_out(Callback.on_stage_end)
    on_evaluation = fan_out(Callback.on_evaluation)
    on_run_end = fan_out(Callback.on_run_end)

    def should_stop(self, stage: Stage, logs: Mapping[str, float]) -> str | None:
        """The first reason any callback gives; every callback is asked (they keep state)."""
        reasons = [callback.should_stop(stage, logs) for callback in self.callbacks]
        return next((reason for reason in reasons if reason is not None), None)
