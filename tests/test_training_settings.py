"""The settings of how training optimises: AdamW and weight decay, label smoothing, the
weights' moving average (EMA). What each does is checked here in this process, on tiny
models, against its closed form; what a run records, how it resumes and how its model
predicts, through the real ``zoo`` entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    batched,
    history_numbers,
    learnable,
    one_device,
    run_zoo,
    stage_plan,
    tiny_classifier,
)
from PIL import Image

import zoo
from zoo.model import assemble
from zoo.plugins import load_registry
from zoo.results.compare import differing_settings
from zoo.storage.runs import RunRecord
from zoo.train.events import Events
from zoo.train.loop import Loop
from zoo.train.trainer import Trainer

#: The heads zoo ships, each with the settings that give it its classes.
HEADS = {
    "gap_sigmoid": [],
    "gap_softmax": ["dataset.classes=circle,square,ring"],
}
TINY = [
    "--set", "dataset.num_images=40", "--image-size", "24", "--batch-size", "8",
    "--epochs", "2",
]  # fmt: skip
#: Every training setting at once, on a frozen backbone (its head trained on cached
#: features) then fine-tuned: both stages, both kinds of checkpoint. ``--keep last``, so
#: the saved weights are the last epoch's, which a resume must reach.
ALL_SETTINGS = [
    "--optimizer", "adamw", "--weight-decay", "0.1", "--label-smoothing", "0.1",
    "--ema", "--ema-momentum", "0.8", "--learning-rate", "0.01", "--keep", "last",
    "--set", "backbone.trainable=false", "--fine-tune-layers", "2",
    "--fine-tune-epochs", "2", "--fine-tune-lr", "0.001",
]  # fmt: skip


def assembled(head: str, **settings: object) -> assemble.Assembled:
    """``shapes small_cnn HEAD`` assembled at 24x24, as ``zoo run`` assembles it."""
    resolved = zoo.resolve_run(
        load_registry(),
        ["shapes", "small_cnn", head],
        settings={"image_size": 24, **settings},
        sets=HEADS[head],
    )
    return assemble.build_model(resolved, 2 if head == "gap_sigmoid" else 3)


def smoothed_cross_entropy(probabilities: np.ndarray, labels: np.ndarray, f: float) -> float:
    """Cross-entropy against labels of ``1 - f`` on the true class plus ``f / K`` on each
    class, as the papers write it; one sigmoid output is the two classes (1 - p, p)."""
    if probabilities.shape[1] == 1:
        probabilities = np.hstack([1 - probabilities, probabilities])
    classes = probabilities.shape[1]
    target = (1 - f) * np.eye(classes)[labels] + f / classes
    return float(np.mean(-(target * np.log(probabilities)).sum(axis=1)))


@pytest.mark.parametrize("head", HEADS)
def test_label_smoothing_trains_on_the_smoothed_cross_entropy_and_validates_on_the_plain(head):
    built = assembled(head, label_smoothing=0.2)
    images = np.random.default_rng(0).uniform(0, 255, (16, 24, 24, 3)).astype("float32")
    labels = np.arange(16, dtype="int32") % (2 if head == "gap_sigmoid" else 3)
    optimizer = assemble.make_optimizer("sgd", 0.0)  # a rate of 0: the weights stay
    optimizer.build(built.model.trainable_variables)
    loop = Loop(built.model, built.loss, [], one_device(), optimizer, None, built.training_loss)
    probabilities = np.asarray(built.model(images), dtype="float64")

    trained = loop.train_epoch(batched(images, labels))["loss"]
    validated = loop.evaluate(batched(images, labels))["loss"]

    assert trained == pytest.approx(smoothed_cross_entropy(probabilities, labels, 0.2), rel=1e-5)
    assert validated == pytest.approx(smoothed_cross_entropy(probabilities, labels, 0.0), rel=1e-5)
    assert assembled(head).training_loss is None  # without smoothing, the head's own loss


def test_label_smoothing_refuses_a_loss_it_cannot_smooth():
    head = zoo.resolve_run(load_registry(), ["shapes", "small_cnn", "gap_sigmoid"]).head

    with pytest.raises(zoo.ZooError, match="needs a cross-entropy loss; head 'gap_sigmoid'"):
        assemble.smoothed(head, "mean_squared_error", 0.1)


def one_step(optimizer_name: str, weight_decay: float) -> list[np.ndarray]:
    """The tiny classifier's weights after one step of zoo's optimizer on one batch."""
    model = tiny_classifier()
    optimizer = assemble.make_optimizer(optimizer_name, 0.1, weight_decay=weight_decay)
    optimizer.build(model.trainable_variables)
    x, y = learnable(8)
    Loop(model, "binary_crossentropy", [], one_device(), optimizer).train_epoch(batched(x, y))
    return [np.asarray(w) for w in model.trainable_weights]


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd", "rmsprop"])
def test_weight_decay_shrinks_each_weight_by_rate_times_decay_before_the_update(optimizer):
    start = [np.asarray(w) for w in tiny_classifier().trainable_weights]
    plain = one_step(optimizer, 0.0)

    decayed = one_step(optimizer, 0.5)

    # Decoupled, as AdamW decays: the optimizer's own step, from weights shrunk by 0.1 x 0.5.
    for w0, without, with_decay in zip(start, plain, decayed, strict=True):
        np.testing.assert_allclose(with_decay, without - 0.1 * 0.5 * w0, atol=1e-6)
    assert np.abs(decayed[0]).sum() < np.abs(plain[0]).sum()


def test_adamw_is_adam_with_weight_decay():
    for adamw, adam in zip(one_step("adamw", 0.5), one_step("adam", 0.5), strict=True):
        np.testing.assert_array_equal(adamw, adam)


def test_ema_validates_and_keeps_the_moving_average_of_the_trained_weights():
    x, y = learnable()
    steps = [batched(x[i : i + 8], y[i : i + 8]) for i in range(0, 48, 8)]
    # The same training without an average, one batch at a time, its weights noted.
    model = tiny_classifier()
    optimizer = assemble.make_optimizer("sgd", 0.5)
    optimizer.build(model.trainable_variables)
    loop = Loop(model, "binary_crossentropy", [], one_device(), optimizer)
    trajectory = []
    for _epoch in range(2):
        for batch in steps:
            loop.train_epoch(batch)
            trajectory.append([np.asarray(w) for w in model.trainable_weights])
    # Keras's average: the first step's weights, then 0.7 of the average each step.
    average = trajectory[0]
    for weights in trajectory[1:]:
        average = [0.7 * a + (1 - 0.7) * w for a, w in zip(average, weights, strict=True)]

    model = tiny_classifier()
    optimizer = assemble.make_optimizer("sgd", 0.5, ema_momentum=0.7)
    optimizer.build(model.trainable_variables)
    trainer = Trainer("binary_crossentropy", ["accuracy"], one_device(), Events([]))
    trainer.fit(stage_plan(model, epochs=2, optimizer=optimizer))

    kept = [np.asarray(w) for w in model.trainable_weights]
    for expected, got, last in zip(average, kept, trajectory[-1], strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        assert not np.allclose(got, last)  # the average, not the last step's weights
    validated = trainer.evaluate(model, batched(x, y))["loss"]
    assert trainer.history[-1]["val_loss"] == pytest.approx(validated, rel=1e-6)


def test_compare_tells_runs_apart_by_weight_decay_and_ema_momentum_only_with_ema():
    def record(**settings: object) -> RunRecord:
        resolved = zoo.resolve_run(load_registry(), ["shapes", "small_cnn", "gap_sigmoid"])
        return RunRecord(Path(), {**resolved.config.to_dict(), **settings}, {})

    without_ema = [record(ema_momentum=0.9), record(ema_momentum=0.5)]
    with_ema = [record(ema=True, ema_momentum=0.9), record(ema=True, ema_momentum=0.5)]
    decay = [record(), record(weight_decay=0.01)]

    assert differing_settings(without_ema) == [{}, {}]
    assert differing_settings(with_ema) == [{"ema_momentum": 0.9}, {"ema_momentum": 0.5}]
    assert differing_settings(decay) == [{"weight_decay": 0.0}, {"weight_decay": 0.01}]


# --- Through the real entry point.


def run_dir(output: Path) -> Path:
    (found,) = output.iterdir()
    return found


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> Path:
    """A run with every training setting, run through without a stop."""
    cwd = tmp_path_factory.mktemp("unbroken")
    result = run_zoo("run", "shapes", "small_cnn", "gap_sigmoid", *TINY, *ALL_SETTINGS, cwd=cwd)
    assert result.exit_code == 0, result.stderr
    return run_dir(cwd / "runs")


def test_a_run_records_every_training_setting(unbroken: Path):
    config = json.loads((unbroken / "config.json").read_text())
    metrics = json.loads((unbroken / "metrics.json").read_text())

    assert {k: config[k] for k in ("optimizer", "weight_decay", "label_smoothing")} == {
        "optimizer": "adamw",
        "weight_decay": 0.1,
        "label_smoothing": 0.1,
    }
    assert (config["ema"], config["ema_momentum"]) == (True, 0.8)
    assert metrics["status"] == "completed"
    assert [row["stage"] for row in metrics["history"]] == ["head"] * 2 + ["fine_tune"] * 2


def test_a_model_trained_with_these_settings_predicts_in_a_new_process(
    unbroken: Path, isolated: Path
):
    Image.fromarray(np.full((30, 30, 3), 200, dtype=np.uint8)).save("grey.png")

    result = run_zoo("predict", str(unbroken), "grey.png", "--json", cwd=isolated)

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["class_names"] == ["circle", "square"]
    (prediction,) = data["predictions"]
    assert sum(top["probability"] for top in prediction["top_k"]) == pytest.approx(1.0)


@pytest.mark.parametrize("epoch", [2, 4], ids=["head", "fine_tune"])
def test_an_interrupted_run_with_ema_resumes_to_the_unbroken_runs_weights(
    unbroken: Path, isolated: Path, epoch: int
):
    command = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY, *ALL_SETTINGS]
    stopped = run_zoo(*command, cwd=isolated, env={"ZOO_TEST_SIGINT": f"epoch.begin@{epoch}"})
    assert stopped.exit_code == 130, stopped.stderr

    resumed = run_zoo("run", "--resume", str(run_dir(isolated / "runs")), "--json", cwd=isolated)

    assert resumed.exit_code == 0, resumed.stderr
    metrics = json.loads(resumed.stdout)
    expected = json.loads((unbroken / "metrics.json").read_text())
    assert [event["from_epoch"] for event in metrics["resumed"]] == [epoch - 1]
    assert history_numbers(metrics) == history_numbers(expected)
    assert metrics["test"] == expected["test"]
    assert metrics["weights_sha256"] == expected["weights_sha256"]


def test_a_three_class_run_trains_with_label_smoothing_and_ema(isolated: Path):
    head = ["shapes", "small_cnn", "gap_softmax", "--set", *HEADS["gap_softmax"]]
    result = run_zoo("run", *head, *TINY, "--label-smoothing", "0.3", "--ema", "--json")

    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)
    config = json.loads((run_dir(isolated / "runs") / "config.json").read_text())
    assert (config["label_smoothing"], config["ema"]) == (0.3, True)
    assert metrics["status"] == "completed"
    assert len(metrics["history"]) == 2


#: A value each setting refuses, and why.
REFUSED = {
    "--label-smoothing": ("1.0", "1.0 is not below 1"),
    "--weight-decay": ("-0.1", "-0.1 is below the minimum 0"),
    "--ema-momentum": ("1", "1.0 is not below 1"),
}


@pytest.mark.parametrize("flag", REFUSED)
def test_a_bad_value_is_refused_before_training(isolated: Path, flag: str):
    value, why = REFUSED[flag]

    result = run_zoo("run", "shapes", "small_cnn", "gap_sigmoid", flag, value)

    assert result.exit_code == 2
    name = flag.removeprefix("--").replace("-", "_")
    assert f"bad value for parameter '{name}' (from the command line): {why}." in result.stderr
    assert f"fix: pass a valid value: {flag} " in result.stderr
    assert "Traceback" not in result.stderr
    assert not (isolated / "runs").exists()
