"""The trainer's events and the callbacks that react to them, in this process."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from helpers import one_device, stage_plan, tiny_classifier

import zoo
from zoo.plugins import load_registry
from zoo.runconfig import resolve_run
from zoo.train.callbacks import Checkpointing, EarlyStopping, RunRecord, TerminateOnNaN
from zoo.train.events import Callback, EpochEnd, EpochStart, Events, RunEnd, StageStart
from zoo.train.monitor import Improvement, Monitor
from zoo.train.record import Record
from zoo.train.reporter import ConsoleReporter
from zoo.train.trainer import Trainer


class Recorder(Callback):
    """Writes down every training event it hears, by name."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.ends: list[EpochEnd] = []

    def on_stage_begin(self, stage: StageStart) -> None:
        self.heard.append(f"stage {stage.plan.stage} from {stage.start}")

    def on_epoch_begin(self, epoch: EpochStart) -> None:
        self.heard.append(f"epoch {epoch.stage_epoch} ({epoch.epoch})")

    def on_train_batch_end(self, step: int, logs: Mapping[str, float]) -> None:
        if not self.heard[-1].startswith("batch"):
            self.heard.append("batch")

    def on_epoch_end(self, epoch: EpochEnd) -> None:
        self.ends.append(epoch)
        self.heard.append(f"end {epoch.stage_epoch}" + (" done" if epoch.stage_done else ""))

    def on_stage_end(self, stage: str, stopped: str | None) -> None:
        self.heard.append(f"stage end {stopped or ''}".strip())


class StopAfter(Callback):
    """Ends the stage after ``epochs`` epochs."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.seen = 0

    def should_stop(self, stage: str, logs: Mapping[str, float]) -> str | None:
        self.seen += 1
        return "enough" if self.seen >= self.epochs else None


def train(*callbacks: Callback, epochs: int = 2, start: int = 0, history=()) -> Trainer:
    trainer = Trainer("binary_crossentropy", ["accuracy"], one_device(), Events(callbacks), history)
    trainer.fit(stage_plan(tiny_classifier(), epochs=epochs), start)
    return trainer


def test_the_trainer_announces_stages_and_epochs_in_order():
    recorder = Recorder()

    trainer = train(recorder, epochs=2)

    assert recorder.heard == [
        "stage head from 0",
        "epoch 1 (1)",
        "batch",
        "end 1",
        "epoch 2 (2)",
        "batch",
        "end 2 done",
        "stage end",
    ]
    assert [row["epoch"] for row in trainer.history] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(trainer.history[0])
    assert recorder.ends[-1].history == tuple(trainer.history)


def test_a_callback_can_end_a_stage_and_the_last_epoch_says_so():
    recorder = Recorder()

    trainer = train(StopAfter(1), recorder, epochs=3)

    assert trainer.epoch == 1
    assert recorder.heard[-2:] == ["end 1 done", "stage end enough"]


def test_a_resumed_stage_runs_only_its_remaining_epochs_and_counts_on():
    recorder = Recorder()
    before = [{"epoch": 1, "stage": "head", "val_loss": 0.5}]

    trainer = train(recorder, epochs=2, start=1, history=before)

    assert recorder.heard[:2] == ["stage head from 1", "epoch 2 (2)"]
    assert [row["epoch"] for row in trainer.history] == [1, 2]


def test_early_stopping_counts_epochs_without_a_lower_validation_loss():
    state = Improvement()

    waits = [state.update(loss) for loss in (1.0, 0.8, 0.9, 0.85, 0.7, 0.7)]

    assert waits == [0, 0, 1, 2, 0, 1]
    assert state.best == 0.7


def rows(*val_losses: float) -> tuple[dict, ...]:
    return tuple({"epoch": i, "stage": "head", "val_loss": v} for i, v in enumerate(val_losses, 1))


def test_early_stopping_keeps_its_count_across_a_resume():
    plan = stage_plan(tiny_classifier())
    unbroken, resumed = EarlyStopping(patience=2), EarlyStopping(patience=2)
    unbroken.on_stage_begin(StageStart(plan))
    answers = [unbroken.should_stop("head", {"val_loss": v}) for v in (0.5, 0.6)]
    resumed.on_stage_begin(StageStart(plan, start=2, previous=rows(0.5, 0.6)))

    assert answers == [None, None]
    assert unbroken.should_stop("head", {"val_loss": 0.7}) is not None
    assert resumed.should_stop("head", {"val_loss": 0.7}) == (
        "early stopping: val_loss did not improve for 2 epochs"
    )


def test_early_stopping_off_never_stops():
    never = EarlyStopping(patience=0)
    never.on_stage_begin(StageStart(stage_plan(tiny_classifier())))

    assert all(never.should_stop("head", {"val_loss": 1.0}) is None for _ in range(5))


def test_a_nan_loss_fails_the_run_naming_epoch_step_and_learning_rate():
    nan_stop = TerminateOnNaN()
    nan_stop.on_stage_begin(StageStart(stage_plan(tiny_classifier(), learning_rate=0.5)))
    nan_stop.on_epoch_begin(EpochStart("head", 3, 7))
    nan_stop.on_train_batch_end(0, {"loss": 0.7})

    with pytest.raises(zoo.RunFailed) as info:
        nan_stop.on_train_batch_end(4, {"loss": float("inf")})

    assert "in epoch 7 (step 5)" in str(info.value)
    assert "(now 0.5)" in str(info.value)


def test_the_files_callbacks_write_a_checkpoint_and_the_record_each_epoch(isolated: Path):
    resolved = resolve_run(load_registry(), ["shapes", "small_cnn", "gap_sigmoid"])
    record = RunRecord(Record(isolated, resolved))
    recorder = Recorder()

    trainer = train(StopAfter(2), Checkpointing(isolated), record, recorder, epochs=5)
    running = json.loads((isolated / "metrics.json").read_text())
    record.on_run_end(RunEnd("completed", trainer.epoch, (*trainer.history,), test={"loss": 1.0}))
    done = json.loads((isolated / "metrics.json").read_text())

    state = json.loads((isolated / "checkpoints" / "epoch-0002" / "state.json").read_text())
    assert (state["epoch"], state["stage_done"]) == (2, True)
    assert running["status"] == "running" and len(running["history"]) == 2
    assert done["status"] == "completed" and done["test"] == {"loss": 1.0}


def test_the_console_reporter_prints_progress_and_early_stops(capsys):
    train(StopAfter(1), ConsoleReporter(), epochs=3)

    err = capsys.readouterr().err
    assert "train epoch 1/3: loss" in err
    assert "train epoch 2/3" not in err
    assert "enough" in err


def test_a_run_tells_extra_callbacks_and_a_silent_reporter_prints_nothing(capsys):
    recorder = Recorder()
    resolved = resolve_run(
        load_registry(),
        ["shapes", "small_cnn", "gap_sigmoid"],
        settings={"epochs": 1, "image_size": 32, "batch_size": 8},
        sets=["dataset.num_images=40", "dataset.min_size=24", "dataset.max_size=40"],
    )

    result = zoo.run(resolved, callbacks=[recorder], reporter=Callback(), command=["test"])

    assert result.metrics["status"] == "completed"
    assert recorder.heard[0] == "stage head from 0"
    assert capsys.readouterr().err == ""


def test_early_stopping_follows_the_monitor_accuracy_going_up():
    stopping = EarlyStopping(patience=1, monitor=Monitor("val_accuracy"))
    stopping.on_stage_begin(StageStart(stage_plan(tiny_classifier())))

    answers = [stopping.should_stop("head", {"val_accuracy": a}) for a in (0.5, 0.7, 0.7)]

    assert answers[:2] == [None, None]
    assert answers[2] == "early stopping: val_accuracy did not improve for 1 epoch"


def test_a_monitor_the_head_does_not_report_is_a_clear_error():
    with pytest.raises(zoo.ZooError, match="the head reports no accuracy") as info:
        Monitor("val_accuracy").value({"loss": 0.3, "val_loss": 0.4, "val_auc": 0.9})

    assert "val_loss, val_auc" in info.value.expected


#: Every event a callback can hear, as :class:`Callback` declares them.
EVENTS = sorted(name for name in vars(Callback) if name.startswith("on_"))


def spy(label: str, heard: list[tuple[str, str, tuple]]) -> Callback:
    """A callback that writes down ``(label, event, arguments)`` for each event it hears."""

    def listener(name: str):
        return lambda self, *args: heard.append((label, name, args))

    return type("Spy", (Callback,), {name: listener(name) for name in EVENTS})()


@pytest.mark.parametrize("name", EVENTS)
def test_events_tells_each_event_to_every_callback_in_order(name: str):
    heard: list[tuple[str, str, tuple]] = []
    events = Events([spy("first", heard), spy("second", heard)])

    getattr(events, name)("argument")

    assert heard == [("first", name, ("argument",)), ("second", name, ("argument",))]


def test_a_callback_that_raises_ends_the_event_before_the_callbacks_after_it():
    """A checkpoint that cannot be written stops the reporter from showing the epoch."""

    class DiskFull(Callback):
        def on_epoch_end(self, epoch: EpochEnd) -> None:
            raise OSError("no space left")

    heard: list[tuple[str, str, tuple]] = []
    events = Events([DiskFull(), spy("reporter", heard)])

    with pytest.raises(OSError, match="no space left"):
        events.on_epoch_end(EpochEnd("head", 1, 1, {}, True, ()))

    assert heard == []


def test_every_callback_is_asked_whether_to_stop_and_the_first_reason_wins():
    first, second = StopAfter(1), StopAfter(1)

    assert Events([first, second]).should_stop("head", {}) == "enough"
    assert (first.seen, second.seen) == (1, 1)


def test_a_run_tells_the_reporter_its_set_up_and_every_callback_the_rest(isolated: Path):
    heard: list[tuple[str, str, tuple]] = []
    resolved = resolve_run(
        load_registry(),
        ["shapes", "small_cnn", "gap_sigmoid"],
        settings={"epochs": 1, "image_size": 32, "batch_size": 8},
        sets=["dataset.num_images=40", "dataset.min_size=24", "dataset.max_size=40"],
    )

    zoo.run(
        resolved, callbacks=[spy("callback", heard)], reporter=spy("reporter", heard), command=[]
    )

    def told(label: str) -> list[str]:
        names = [name for who, name, _ in heard if who == label]
        return [name for i, name in enumerate(names) if i == 0 or names[i - 1] != name]

    run = [
        "on_run_begin",
        "on_stage_begin",
        "on_epoch_begin",
        "on_train_batch_end",
        "on_epoch_end",
        "on_stage_end",
        "on_evaluation",
        "on_run_end",
    ]
    assert told("reporter") == ["on_placement", "on_model_built", "on_data_loaded", *run]
    assert told("callback") == run
    assert heard[-1][2][0].status == "completed"
