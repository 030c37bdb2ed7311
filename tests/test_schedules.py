"""Learning-rate schedules and class weights, through the custom loop."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    TINY_RUN,
    batched,
    history_numbers,
    learnable,
    one_device,
    stage_plan,
    tiny_classifier,
)

import zoo
from zoo.config.settings import RunSettings
from zoo.data import pipeline
from zoo.plugins import load_registry
from zoo.train import schedules
from zoo.train.callbacks import Checkpointing
from zoo.train.durability import checkpoints
from zoo.train.events import EpochEnd, Events, StageStart
from zoo.train.loop import Loop
from zoo.train.monitor import Monitor
from zoo.train.schedules import ReduceOnPlateau, Shape
from zoo.train.trainer import Trainer


def rates(schedule, steps: int) -> list[float]:
    return [float(schedule(step)) for step in range(steps)]


def test_cosine_with_warm_up_rises_then_falls_to_zero_at_the_stages_end():
    base = 0.1
    shape = schedules.shape_of(
        RunSettings(lr_schedule="cosine", warmup_epochs=1), epochs=3, steps_per_epoch=4
    )
    assert shape == Shape(steps=12, warmup_steps=4, cosine=True)

    found = rates(schedules.schedule(base, shape), 12)

    warm_up = [base * (step + 1) / 4 for step in range(4)]
    decay = [base * (1 + math.cos(math.pi * (step - 4) / 8)) / 2 for step in range(4, 12)]
    assert found == pytest.approx(warm_up + decay, rel=1e-5)  # float32
    assert found[3] == pytest.approx(base) and found[-1] < base * 0.05


def test_a_constant_rate_without_warm_up_needs_no_schedule():
    assert schedules.shape_of(RunSettings(), epochs=3, steps_per_epoch=4) is None
    assert schedules.shape_of(RunSettings(lr_schedule="plateau"), 3, 4) == Shape(12)


def test_a_schedule_needs_the_number_of_steps():
    with pytest.raises(zoo.ZooError, match="does not declare its split sizes"):
        schedules.shape_of(RunSettings(lr_schedule="cosine"), epochs=3, steps_per_epoch=None)


def scheduled_plan(model, epochs: int, **settings):
    """A head stage on learnable data whose Adam follows the schedule ``settings`` ask for."""
    import keras

    shape = schedules.shape_of(RunSettings(**settings), epochs, steps_per_epoch=6)
    schedule = schedules.schedule(0.05, shape)
    optimizer = keras.optimizers.Adam(schedule)
    optimizer.build(model.trainable_variables)
    return stage_plan(model, epochs, optimizer=optimizer, schedule=schedule)


def train(plan, *callbacks, start: int = 0, history=()) -> Trainer:
    trainer = Trainer("binary_crossentropy", ["accuracy"], one_device(), Events(callbacks), history)
    trainer.fit(plan, start)
    return trainer


def test_each_epochs_rate_is_recorded_and_a_resumed_stage_continues_the_schedule(tmp_path):
    settings = {"lr_schedule": "cosine", "warmup_epochs": 1}
    unbroken = train(scheduled_plan(tiny_classifier(), 3, **settings))
    first = scheduled_plan(tiny_classifier(), 3, **settings)
    stopped = train(dataclasses.replace(first, epochs=1), Checkpointing(tmp_path))

    model = tiny_classifier(seed=5)
    plan = scheduled_plan(model, 3, **settings)
    checkpoint = checkpoints.latest(tmp_path)
    assert checkpoint is not None
    checkpoints.restore(checkpoint, model, plan.optimizer)
    resumed = train(plan, start=1, history=stopped.history)

    rates_seen = [row["learning_rate"] for row in unbroken.history]
    assert rates_seen == pytest.approx([0.05 / 6, 0.05, 0.05 * (1 + math.cos(math.pi / 2)) / 2])
    assert history_numbers({"history": resumed.history}) == pytest.approx(
        history_numbers({"history": unbroken.history})
    )


def epoch_end(epoch: int, val_loss: float) -> EpochEnd:
    return EpochEnd("head", epoch, epoch, {"val_loss": val_loss}, False, ())


def test_reduce_on_plateau_lowers_the_rate_and_a_resume_replays_it():
    plan = scheduled_plan(tiny_classifier(), 6, lr_schedule="plateau")
    plateau = ReduceOnPlateau(Monitor("val_loss"), patience=2, factor=0.5)
    plateau.on_stage_begin(StageStart(plan))
    factors = []
    for epoch, val_loss in enumerate((1.0, 0.9, 0.95, 0.92, 0.8, 0.85), 1):
        plateau.on_epoch_end(epoch_end(epoch, val_loss))
        factors.append(float(plan.schedule.factor.numpy()))
    replayed = ReduceOnPlateau(Monitor("val_loss"), patience=2, factor=0.5)
    before = (1.0, 0.9, 0.95, 0.92)
    rows = [{"epoch": e, "stage": "head", "val_loss": v} for e, v in enumerate(before, 1)]
    plan.schedule.factor.assign(1.0)
    replayed.on_stage_begin(StageStart(plan, start=4, previous=tuple(rows)))

    assert factors == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    assert float(plan.schedule.factor.numpy()) == 0.5
    assert float(plan.optimizer.learning_rate) == pytest.approx(0.025)


def test_balanced_class_weights_make_every_class_count_alike():
    labels = [0] * 6 + [1] * 2 + [2] * 0

    weights = pipeline.balanced_weights(labels, num_classes=3)

    assert weights == pytest.approx((8 / 18, 8 / 6, 0.0))
    assert 6 * weights[0] == pytest.approx(2 * weights[1])  # each class weighs the same in all


def test_class_weights_multiply_each_examples_loss_over_the_global_batch():
    import keras

    model = tiny_classifier(units=3)
    x, _ = learnable(count=13)
    y = np.arange(13) % 3
    weights = (0.5, 2.0, 1.0)
    per_example = keras.losses.sparse_categorical_crossentropy(y, model(x)).numpy()
    optimizer = keras.optimizers.SGD(0.0)  # the loss of weights that do not move
    optimizer.build(model.trainable_variables)
    loop = Loop(model, "sparse_categorical_crossentropy", [], one_device(), optimizer, weights)

    logs = loop.train_epoch(batched(x, y, size=5))
    unweighted = loop.evaluate(batched(x, y, size=5))

    assert logs["loss"] == pytest.approx((per_example * np.take(weights, y)).mean(), rel=1e-6)
    assert unweighted["loss"] == pytest.approx(per_example.mean(), rel=1e-6)


#: Two logical CPUs, as a machine with two GPUs looks: a mirrored loop with class weights
#: and a schedule must end with the weights of one device.
MIRRORED = """
import json, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
import keras
from zoo.train.distribute import place
from zoo.train.loop import Loop
from zoo.train import schedules

x = np.random.default_rng(0).normal(size=(27, 4)).astype("float32")
y = (x[:, 0] > 0.5).astype("int32")  # about one in three is a 1
weights = (0.7, 1.9)
result = {}
for name in ("default", "mirrored"):
    placement = place(name)
    with placement.strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
        schedule = schedules.schedule(0.1, schedules.Shape(steps=8, warmup_steps=2, cosine=True))
        optimizer = keras.optimizers.Adam(schedule)
        optimizer.build(model.trainable_variables)
    loop = Loop(model, "binary_crossentropy", [], placement, optimizer, weights)
    # 27 examples in batches of 8: the last batch is short, and split unevenly.
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    losses = [loop.train_epoch(dataset)["loss"] for _ in range(2)]
    result[name] = {
        "replicas": placement.strategy.num_replicas_in_sync,
        "losses": losses,
        "weights": [w.tolist() for w in model.get_weights()],
    }
json.dump(result, sys.stdout)
"""


def test_class_weights_and_schedules_on_two_replicas_match_one_device(isolated: Path):
    script = isolated / "mirrored.py"
    script.write_text(MIRRORED)

    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )

    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout)
    assert (found["default"]["replicas"], found["mirrored"]["replicas"]) == (1, 2)
    assert found["mirrored"]["losses"] == pytest.approx(found["default"]["losses"], abs=1e-6)
    for a, b in zip(found["mirrored"]["weights"], found["default"]["weights"], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_a_run_records_its_class_weights_and_rates(zoo_cli):
    result = zoo_cli(
        "run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--epochs", "2",
        "--class-weight", "balanced", "--lr-schedule", "cosine", "--json",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    metrics = result.json()
    resolved = zoo.resolve_run(
        load_registry(),
        ["shapes", "small_cnn", "gap_sigmoid"],
        sets=["dataset.num_images=40", "dataset.min_size=24", "dataset.max_size=40"],
    )
    from zoo.model.assemble import build_splits

    labels = pipeline.labels_of(build_splits(resolved).train)
    expected = pipeline.balanced_weights(labels, 2)
    assert list(metrics["class_weights"].values()) == pytest.approx(expected)
    assert [row["learning_rate"] for row in metrics["history"]] == pytest.approx([1e-3, 5e-4])
    assert "lr 0.0005" in result.stderr
