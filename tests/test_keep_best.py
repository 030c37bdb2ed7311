"""--keep best: the saved model, the test metrics and metrics.json are the best epoch's."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    TINY_RUN,
    corrupt,
    interrupt_after_epoch,
    one_device,
    stage_plan,
    tiny_classifier,
    truncate,
    write,
)

import zoo
from zoo.plugins import load_registry
from zoo.train.durability import best
from zoo.train.durability.best import KeepBest, kept
from zoo.train.events import Callback, EpochEnd, Events, StageStart
from zoo.train.monitor import Monitor
from zoo.train.trainer import Trainer

RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--epochs", "3", "--json"]
FROZEN = ["--set", "backbone.trainable=false"]


def rows(*values: float, key: str = "val_loss") -> list[dict]:
    return [{"epoch": i, "stage": "head", key: v} for i, v in enumerate(values, 1)]


@pytest.mark.parametrize(
    ("monitor", "values", "best_value"),
    [
        ("val_loss", (0.9, 0.5, 0.7, 0.5), 0.5),  # lowest; a tie keeps the earlier epoch
        ("val_accuracy", (0.5, 1.0, 0.9, 1.0), 1.0),  # highest
    ],
)
def test_the_kept_epoch_is_the_first_best_by_the_monitor(monitor, values, best_value):
    history = rows(*values, key=monitor)

    chosen = kept("best", Monitor(monitor), history)
    last = kept("last", Monitor(monitor), history)

    assert chosen is not None and last is not None
    assert (chosen["epoch"], chosen["value"], chosen["best_epoch"]) == (2, best_value, 2)
    assert (last["epoch"], last["value"], last["best_epoch"], last["of_epochs"]) == (
        4,
        values[-1],
        2,
        4,
    )


def test_epochs_before_since_are_never_kept():
    """Their weights were lost (a resume found best/ damaged)."""
    history = rows(0.2, 0.9, 0.5, 0.7)

    chosen = kept("best", Monitor(), history, since=2)

    assert chosen is not None
    assert (chosen["epoch"], chosen["best_epoch"], chosen["since"]) == (3, 3, 2)
    assert "since" not in (kept("best", Monitor(), history) or {})


def kept_one_epoch(run_dir: Path) -> KeepBest:
    model = tiny_classifier()
    keep = KeepBest(Monitor(), assembled=_Parts(model), directory=run_dir)
    keep.on_stage_begin(StageStart(stage_plan(model)))
    keep.on_epoch_end(EpochEnd("head", 1, 1, {"val_loss": 0.5}, False, ()))
    return keep


#: Damage done to best/, and how it is named.
BEST_DAMAGE = {
    "pointer garbled": (lambda f: truncate(f / "best.json"), "best/best.json is not valid JSON"),
    "weights truncated": (
        lambda f: truncate(f / "epoch-0001" / "model.weights.h5"),
        "best/epoch-0001/model.weights.h5 is truncated",
    ),
    "weights corrupted": (
        lambda f: corrupt(f / "epoch-0001" / "model.weights.h5"),
        "best/epoch-0001/model.weights.h5 is corrupted",
    ),
    "weights missing": (
        lambda f: (f / "epoch-0001" / "model.weights.h5").unlink(),
        "best/epoch-0001/model.weights.h5 is missing",
    ),
    "state garbled": (
        lambda f: truncate(f / "epoch-0001" / "state.json"),
        "best/epoch-0001/state.json is not valid JSON",
    ),
}


@pytest.mark.parametrize("damage", BEST_DAMAGE)
def test_a_damaged_best_epoch_is_named(tmp_path: Path, damage: str):
    kept_one_epoch(tmp_path)
    do, named = BEST_DAMAGE[damage]
    do(tmp_path / "best")

    found, problem = best.inspect(tmp_path)

    assert found is None and problem is not None and problem.startswith(named)


def test_a_best_kept_elsewhere_is_copied_into_best_when_the_run_begins(tmp_path: Path):
    """After a resume found best/ damaged, the checkpoint's epoch is the best so far."""
    model = tiny_classifier()
    checkpoint = tmp_path / "checkpoints" / "epoch-0003"
    checkpoint.mkdir(parents=True)
    model.save_weights(checkpoint / "model.weights.h5")
    seed = best.Best(3, "head", "val_loss", 0.4, "model", checkpoint, since=3)
    keep = KeepBest(Monitor(), assembled=_Parts(model), directory=tmp_path, previous=seed)

    keep.on_run_begin(None)  # the run's facts are not needed
    shutil.rmtree(checkpoint)  # pruned later

    assert best.load(tmp_path) == replace(seed, path=tmp_path / "best" / "epoch-0003")
    keep.restore()


class Snapshots(Callback):
    """The model's weights after every epoch, by epoch."""

    def __init__(self, model) -> None:
        self.model = model
        self.weights: dict[int, list[np.ndarray]] = {}

    def on_epoch_end(self, epoch: EpochEnd) -> None:
        self.weights[epoch.epoch] = [np.array(w) for w in self.model.get_weights()]


def test_keep_best_restores_the_best_epochs_weights_and_a_new_process_finds_them(tmp_path):
    model = tiny_classifier()
    keep = KeepBest(Monitor("val_accuracy"), assembled=_Parts(model), directory=tmp_path)
    snapshots = Snapshots(model)
    trainer = Trainer("binary_crossentropy", ["accuracy"], one_device(), Events([keep, snapshots]))
    trainer.fit(stage_plan(model, epochs=8, learning_rate=0.2))
    chosen = kept("best", Monitor("val_accuracy"), trainer.history)
    assert chosen is not None and chosen["epoch"] < 8  # accuracy tops out before the end

    keep.restore()

    for restored, saved in zip(
        model.get_weights(), snapshots.weights[chosen["epoch"]], strict=True
    ):
        np.testing.assert_array_equal(restored, saved)
    found = best.load(tmp_path)
    assert found is not None and found.epoch == chosen["epoch"] == keep.best.epoch
    assert sorted(p.name for p in (tmp_path / "best").iterdir()) == [
        "best.json",
        f"epoch-{found.epoch:04d}",
    ]


def test_a_torn_write_of_a_new_best_leaves_the_previous_one(tmp_path):
    model = tiny_classifier()
    keep = KeepBest(Monitor(), assembled=_Parts(model), directory=tmp_path)
    keep.on_stage_begin(StageStart(stage_plan(model)))
    keep.on_epoch_end(EpochEnd("head", 1, 1, {"val_loss": 0.5}, False, ()))
    # What SIGKILL in the middle of writing a better epoch 2 leaves behind.
    torn = tmp_path / "best" / ".epoch-0002.abc123"
    torn.mkdir()
    (torn / "model.weights.h5").write_bytes(b"\x89HDF half a file")

    found = best.load(tmp_path)

    assert found is not None and (found.epoch, found.value) == (1, 0.5)


class _Parts:
    """The parts of ``zoo.model.assemble.Assembled`` that KeepBest uses, for one model."""

    def __init__(self, model) -> None:
        self.model = self.head = model


def run_json(zoo_cli, *args: str) -> dict:
    result = zoo_cli(*RUN, *args)
    assert result.exit_code == 0, result.stderr
    return result.json()


def validation_metrics(run_dir: Path) -> dict[str, float]:
    """The saved model of ``run_dir`` evaluated on the raw validation images."""
    import keras

    from zoo.data import pipeline
    from zoo.model.assemble import build_splits

    model = keras.models.load_model(run_dir / "model.keras")
    resolved = zoo.resolve_run(
        load_registry(),
        ["shapes", "small_cnn", "gap_sigmoid"],
        sets=["dataset.num_images=40", "dataset.min_size=24", "dataset.max_size=40"],
    )
    validation = build_splits(resolved).validation
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    batches = pipeline.batches(validation, image_size=32, batch_size=8, size=4)
    return model.evaluate(batches, verbose=0, return_dict=True)


def epoch_row(metrics: Mapping, epoch: int) -> Mapping:
    return next(row for row in metrics["history"] if row["epoch"] == epoch)


@pytest.mark.parametrize("frozen", [False, True], ids=["whole model", "head on cached features"])
def test_the_saved_model_is_the_best_epoch_not_the_last(zoo_cli, isolated, frozen):
    metrics = run_json(zoo_cli, *(FROZEN if frozen else []))

    chosen = metrics["kept"]
    val_losses = [row["val_loss"] for row in metrics["history"]]
    assert chosen["keep"] == "best" and chosen["monitor"] == "val_loss"
    assert chosen["epoch"] == 1 + val_losses.index(min(val_losses))
    assert chosen["epoch"] != len(val_losses)  # these settings peak before the end
    assert chosen["metrics"] == {
        k: v for k, v in epoch_row(metrics, chosen["epoch"]).items() if k not in ("epoch", "stage")
    }
    saved = validation_metrics(isolated / metrics["run_dir"])
    assert saved["loss"] == pytest.approx(chosen["metrics"]["val_loss"], rel=1e-5)
    assert saved["accuracy"] == pytest.approx(chosen["metrics"]["val_accuracy"])


def test_keep_last_saves_the_last_epoch_and_says_which_was_best(zoo_cli, isolated):
    result = zoo_cli(*RUN, "--keep", "last")

    metrics = result.json()
    chosen = metrics["kept"]
    assert (chosen["keep"], chosen["epoch"]) == ("last", 3)
    assert chosen["best_epoch"] != 3
    saved = validation_metrics(isolated / metrics["run_dir"])
    assert saved["loss"] == pytest.approx(epoch_row(metrics, 3)["val_loss"], rel=1e-5)
    assert (
        f"kept the last epoch, epoch 3 of 3; the best val_loss was epoch {chosen['best_epoch']} "
        "(--keep best keeps that one)"
    ) in result.stderr


def test_the_end_of_a_run_says_which_epoch_was_kept(zoo_cli):
    result = zoo_cli(*RUN)

    chosen = result.json()["kept"]
    assert (
        f"kept epoch {chosen['epoch']} of 3: the best val_loss ({chosen['value']:.4f}); "
        "the saved model and the test metrics are that epoch's"
    ) in result.stderr
    assert f"results (epoch {chosen['epoch']})" in result.stderr


#: A frozen backbone whose best epoch is in the head stage, then fine-tuned: the best
#: must survive fine-tuning changing the backbone, and an interruption while it does.
FINE_TUNED = [
    *FROZEN, "--fine-tune-layers", "2", "--fine-tune-epochs", "2", "--fine-tune-lr", "0.01",
]  # fmt: skip


@pytest.mark.parametrize("stop_after", [2, 4], ids=["head stage", "fine-tuning"])
def test_an_interrupted_run_keeps_its_best_so_far_and_ends_as_an_unbroken_one(
    zoo_cli, monkeypatch: pytest.MonkeyPatch, isolated: Path, stop_after: int
):
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, stop_after)
        stopped = zoo_cli(*RUN, *FINE_TUNED)
    assert stopped.exit_code == 130
    run_dir = Path(stopped.stderr.split("Resume with: zoo run --resume ")[1].split()[0])
    interrupted = json.loads((run_dir / "metrics.json").read_text())
    so_far = best.load(run_dir)
    assert so_far is not None and interrupted["kept"]["epoch"] == so_far.epoch
    # Once fine-tuning began, a head-only best became whole-model weights.
    assert so_far.weights == ("head" if stop_after <= 3 else "model")

    resumed = zoo_cli("run", "--resume", str(run_dir), "--json").json()
    unbroken = run_json(zoo_cli, *FINE_TUNED, "--output", "unbroken")

    assert unbroken["kept"]["stage"] == "head"  # the backbone it was kept with is the original
    assert resumed["kept"] == unbroken["kept"]
    assert resumed["test"] == pytest.approx(unbroken["test"])
    assert resumed["weights_sha256"] == unbroken["weights_sha256"]


NO_ACCURACY_PLUGIN = """
import zoo

def build(features, num_classes, params):
    import keras
    x = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32")(x)
    return zoo.BuiltHead(outputs=outputs, loss="binary_crossentropy", metrics=())

@zoo.hookimpl
def register_heads(register):
    register(zoo.Head(name="loss_only", description="No metrics", build=build, max_classes=2))
"""


def test_monitoring_a_metric_the_head_lacks_fails_the_run_and_says_so(zoo_cli, isolated):
    write(isolated / "head_plugin.py", NO_ACCURACY_PLUGIN)
    write(isolated / "registry.toml", '[plugins]\nload = ["head_plugin.py"]\n')

    result = zoo_cli(
        "run", "shapes", "small_cnn", "loss_only", *TINY_RUN, "--monitor", "val_accuracy"
    )

    assert result.exit_code == 2
    assert "--monitor val_accuracy: the head reports no accuracy." in result.stderr
    assert "fix: pass --monitor val_loss" in result.stderr
    [run_dir] = (isolated / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed"
    assert metrics["kept"]["best_epoch"] is None
