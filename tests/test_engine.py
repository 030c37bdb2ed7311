"""The training engine: feature caching, fine-tuning, records, reproducibility."""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
from pathlib import Path

import pytest
from helpers import TINY_RUN, bn_cnn_plugin, write

import zoo
from zoo.plugins import load_registry

RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--json"]
FROZEN = ["--set", "backbone.trainable=false"]

BN_PLUGIN = bn_cnn_plugin(trainable=False)


@pytest.fixture
def feature_cache_dir() -> Path:
    """The test's own cache folder (``conftest.isolated`` sets ``ZOO_CACHE_DIR``)."""
    return Path(os.environ["ZOO_CACHE_DIR"])


def run_json(zoo_cli, *args: str) -> dict:
    result = zoo_cli(*RUN, *args)
    assert result.exit_code == 0, result.stderr
    return result.json()


def sources(metrics: dict) -> set[str]:
    return {split["source"] for split in metrics["feature_cache"].values()}


def test_a_frozen_backbone_trains_its_head_on_features_extracted_once(zoo_cli):
    first = run_json(zoo_cli, *FROZEN)
    second = run_json(zoo_cli, *FROZEN)

    assert sources(first) == {"extracted"}
    assert sources(second) == {"cache"}
    assert second["history"] == first["history"]
    assert second["test"] == first["test"]
    assert "extract" in first["timings"]


@pytest.mark.parametrize(
    "change",
    [
        ["--image-size", "24"],
        ["--set", "dataset.num_images=48"],
        ["--set", "dataset.seed=1"],
        ["--set", "backbone.filters=8,8,16"],
        ["--seed", "3"],  # another seed initialises another random backbone
    ],
)
def test_any_change_to_what_features_depend_on_misses_the_cache(zoo_cli, change):
    run_json(zoo_cli, *FROZEN)

    changed = run_json(zoo_cli, *FROZEN, *change)

    assert sources(changed) == {"extracted"}


def test_the_cache_can_be_turned_off(zoo_cli, feature_cache_dir: Path):
    metrics = run_json(zoo_cli, *FROZEN, "--no-feature-cache")

    assert "feature_cache" not in metrics
    assert not feature_cache_dir.exists()


def test_features_beyond_the_memory_budget_are_read_from_disk_with_the_same_result(zoo_cli):
    in_memory = run_json(zoo_cli, *FROZEN)
    on_disk = run_json(zoo_cli, *FROZEN, "--feature-cache-memory", "0")

    assert on_disk["history"] == in_memory["history"]
    assert on_disk["test"] == in_memory["test"]


def test_the_saved_model_on_raw_test_images_matches_the_cached_evaluation(zoo_cli, isolated):
    import keras

    import zoo.model.layers  # registers the Preprocess layer for loading
    from zoo.data import pipeline
    from zoo.model.assemble import build_splits

    metrics = run_json(zoo_cli, *FROZEN)
    model = keras.models.load_model(isolated / metrics["run_dir"] / "model.keras")
    resolved = zoo.resolve_run(
        load_registry(),
        ["shapes", "small_cnn", "gap_sigmoid"],
        sets=["dataset.num_images=40", "dataset.min_size=24", "dataset.max_size=40"],
    )
    test = build_splits(resolved).test
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    raw = model.evaluate(
        pipeline.batches(test, image_size=32, batch_size=8, size=4), verbose=0, return_dict=True
    )

    assert raw["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert raw["loss"] == pytest.approx(metrics["test"]["loss"], rel=1e-5)


def test_the_same_seed_gives_identical_metrics_and_another_seed_does_not(zoo_cli):
    first = run_json(zoo_cli, "--epochs", "2")
    again = run_json(zoo_cli, "--epochs", "2")
    other = run_json(zoo_cli, "--epochs", "2", "--seed", "7")

    assert again["history"] == first["history"]
    assert again["test"] == first["test"]
    assert again["weights_sha256"] == first["weights_sha256"]
    assert other["weights_sha256"] != first["weights_sha256"]


def test_the_record_says_what_ran_where(zoo_cli, isolated):
    metrics = run_json(zoo_cli)

    assert metrics["status"] == "completed"
    assert metrics["strategy"].startswith("default on /device:CPU:0")
    assert metrics["precision"] == "float32"
    assert metrics["devices"] == ["/device:CPU:0"]
    assert {"data", "build", "train", "evaluate", "save"} <= set(metrics["timings"])
    assert metrics["plugins"]["backbone"] == {
        "plugin": "small_cnn",
        "package": "zoo",
        "version": zoo.__version__,
    }
    assert metrics["history"][0]["stage"] == "head"
    saved = json.loads((isolated / metrics["run_dir"] / "metrics.json").read_text())
    assert saved["weights_sha256"] == metrics["weights_sha256"]


def test_tensorboard_gets_train_and_validation_scalars_per_epoch(zoo_cli, isolated):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    metrics = run_json(zoo_cli, "--epochs", "2")

    for split in ("train", "validation"):
        events = EventAccumulator(str(isolated / metrics["run_dir"] / "logs" / split)).Reload()
        tags = events.Tags()["tensors"]
        assert {"epoch_loss", "epoch_accuracy"} <= set(tags)
        assert [e.step for e in events.Tensors("epoch_loss")] == [0, 1]
        assert ("epoch_learning_rate" in tags) == (split == "train")  # where Keras writes it


def test_checkpoints_are_kept_for_the_last_two_epochs(zoo_cli, isolated):
    metrics = run_json(zoo_cli, "--epochs", "3")

    folder = isolated / metrics["run_dir"] / "checkpoints"
    names = ["epoch-0002", "epoch-0003", "latest.json"]
    assert sorted(p.name for p in folder.iterdir()) == names
    state = json.loads((folder / "epoch-0003" / "state.json").read_text())
    assert state["epoch"] == 3 and len(state["history"]) == 3


def test_early_stopping_ends_a_stage_without_improvement(zoo_cli):
    metrics = run_json(zoo_cli, "--epochs", "5", "--learning-rate", "0", "--early-stopping", "1")

    assert [row["epoch"] for row in metrics["history"]] == [1, 2]
    assert metrics["status"] == "completed"


def test_a_nan_loss_stops_the_run_and_marks_it_failed(zoo_cli, isolated):
    write(
        isolated / "nan_plugin.py",
        """
        import zoo

        def build(image_shape, params):
            import keras
            model = keras.Sequential(
                [keras.Input(image_shape), keras.layers.Conv2D(2, 3),
                 keras.layers.Rescaling(float("nan"))], name="nan_maker")
            return zoo.BuiltBackbone(model=model, preprocessing="unit")

        @zoo.hookimpl
        def register_backbones(register):
            register(zoo.Backbone(name="nan_maker", description="NaN out", build=build))
        """,
    )
    write(isolated / "registry.toml", '[plugins]\nload = ["nan_plugin.py"]\n')

    result = zoo_cli("run", "shapes", "nan_maker", "gap_sigmoid", *TINY_RUN)

    assert result.exit_code == 1
    assert "NaN or infinite" in result.stderr
    [run_dir] = (isolated / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed"
    assert "learning rate" in metrics["error"]


def test_fine_tuning_unfreezes_the_top_but_keeps_batch_norm_frozen(zoo_cli, isolated):
    import keras

    import zoo.model.layers  # noqa: F401

    write(isolated / "bn_plugin.py", BN_PLUGIN)
    write(isolated / "registry.toml", '[plugins]\nload = ["bn_plugin.py"]\n')
    base = ["run", "shapes", "bn_cnn", "gap_sigmoid", *TINY_RUN, "--json"]
    head_only = zoo_cli(*base, "--output", "head_only").json()
    result = zoo_cli(
        *base, "--fine-tune-layers", "2", "--fine-tune-epochs", "1", "--fine-tune-lr", "0.01"
    )
    tuned = result.json()

    assert [row["stage"] for row in tuned["history"]] == ["head", "fine_tune"]
    assert tuned["fine_tune_layers"] == ["conv2"]
    # The top 2 of conv1, bn1, relu1, conv2, bn2: conv2 learns, bn2 stays frozen.
    assert (
        "fine-tuning: --fine-tune-layers 2: the top 2 of 5 layers, 1 of which hold weights "
        "and were unfrozen; 1 BatchNormalization kept frozen"
    ) in result.stderr
    assert tuned["fine_tune"]["batch_norm_kept_frozen"] == ["bn2"]
    assert tuned["fine_tune_parameters"]["trainable"] > tuned["parameters"]["trainable"]
    before = keras.models.load_model(isolated / head_only["run_dir"] / "model.keras")
    after = keras.models.load_model(isolated / tuned["run_dir"] / "model.keras")
    weights = {
        m: {w.path: w.numpy() for w in m.get_layer("bn_cnn").weights} for m in (before, after)
    }
    changed = {
        path for path in weights[before] if (weights[before][path] != weights[after][path]).any()
    }
    assert changed == {"conv2/kernel", "conv2/bias"}


def test_fine_tuning_needs_to_know_what_to_unfreeze(zoo_cli):
    result = zoo_cli(*RUN, "--fine-tune-epochs", "1")

    assert result.exit_code == 2
    assert "--fine-tune-layers" in result.stderr


def test_an_unknown_layer_to_fine_tune_from_suggests_names(zoo_cli):
    result = zoo_cli(*RUN, "--fine-tune-layers", "conv", "--fine-tune-epochs", "1")

    assert result.exit_code == 2
    assert "no layer named 'conv'" in result.stderr
    assert "did you mean 'conv" in result.stderr
    assert "train epoch" not in result.stderr  # checked before any training


def test_the_head_output_stays_float32_under_mixed_precision():
    import keras

    resolved = zoo.resolve_run(load_registry(), ["shapes", "small_cnn", "gap_softmax"])
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        assembled = zoo.build_model(resolved, num_classes=3)
    finally:
        keras.mixed_precision.set_global_policy(previous)

    assert assembled.model.outputs[0].dtype == "float32"
    assert assembled.backbone.compute_dtype == "float16"


def test_multiworker_without_tf_config_is_a_clear_error(zoo_cli, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)

    result = zoo_cli(*RUN, "--strategy", "multiworker")

    assert result.exit_code == 2
    assert "TF_CONFIG" in result.stderr


def test_a_malformed_tf_config_is_a_clear_error(zoo_cli, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": 3}')

    result = zoo_cli(*RUN)

    assert result.exit_code == 2
    assert "TF_CONFIG is not a valid cluster description" in result.stderr


@pytest.mark.parametrize(
    ("text", "size"), [("512MB", 512 * 1024**2), ("2gb", 2 * 1024**3), ("0", 0)]
)
def test_memory_sizes_read_like_people_write_them(text, size):
    from zoo.storage.sizes import parse_size

    assert parse_size(text) == size


def test_a_bad_memory_size_is_a_clear_error(zoo_cli):
    result = zoo_cli(*RUN, "--feature-cache-memory", "lots")

    assert result.exit_code == 2
    assert "512MB" in result.stderr


def test_the_protocol_reads_in_its_docstring_as_run_protocol_runs_it():
    """The steps a reader finds first, atop zoo/train/protocol.py, are the code's, in order."""
    from zoo.train import protocol

    steps = {
        name
        for name, value in vars(protocol).items()
        if inspect.isfunction(value) and value.__module__ == protocol.__name__
    } - {"run_protocol"}
    steps = {name for name in steps if not name.startswith("_")}
    documented = re.findall(r"^\d+\. :func:`(\w+)`", protocol.__doc__ or "", re.MULTILINE)
    body = ast.parse(inspect.getsource(protocol.run_protocol))
    calls = sorted(
        (node for node in ast.walk(body) if isinstance(node, ast.Call)),
        key=lambda node: (node.lineno, node.col_offset),
    )
    names = [c.func.id for c in calls if isinstance(c.func, ast.Name) and c.func.id in steps]
    called = [name for i, name in enumerate(names) if i == 0 or names[i - 1] != name]
    called.append(called.pop(called.index("ending")))  # it wraps the steps after it

    assert set(documented) == steps
    assert documented == called
