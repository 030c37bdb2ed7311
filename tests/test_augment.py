"""--augment: random changes to training images only, with the feature cache too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_RUN

from zoo import data
from zoo.train import features as feature_cache

RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--json"]
FROZEN = ["--set", "backbone.trainable=false"]
STRONG = data.Augmentation(flip="both", rotation=0.2, zoom=0.2, translation=0.2, contrast=0.5)


def images(augmentation: data.Augmentation | None, seed: int = 0) -> np.ndarray:
    """12 random 20x20 images through ``data.batches``, in order."""
    import tensorflow as tf

    pixels = np.random.default_rng(0).integers(0, 256, size=(12, 20, 20, 3), dtype=np.uint8)
    split = tf.data.Dataset.from_tensor_slices((pixels, np.zeros(12, dtype=np.int32)))
    batches = data.batches(
        split, image_size=16, batch_size=5, augmentation=augmentation, augment_seed=seed
    )
    return np.concatenate([x.numpy() for x, _ in batches])


def test_augmentation_changes_images_the_same_way_for_the_same_seed():
    plain = images(None)
    first, again, other = images(STRONG, seed=1), images(STRONG, seed=1), images(STRONG, seed=2)

    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, plain)
    assert not np.allclose(first, other)
    assert first.shape == plain.shape == (12, 16, 16, 3)
    assert first.dtype == np.float32 and first.min() >= 0 and first.max() <= 255


def test_each_strength_switches_one_keras_layer_on():
    assert [type(layer).__name__ for layer in STRONG.layers(seed=0)] == [
        "RandomFlip",
        "RandomRotation",
        "RandomZoom",
        "RandomTranslation",
        "RandomContrast",
    ]
    assert data.Augmentation(rotation=0.1).layers(seed=0)[0].factor == (-0.1, 0.1)
    assert data.Augmentation().layers(seed=0) == []


class Spy:
    """Counts what ``Augmentation.apply`` is given: the number of batches of each call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[int] = []
        apply = data.Augmentation.apply

        def spying(augmentation, batches, seed):
            self.batches.append(int(batches.cardinality()))
            return apply(augmentation, batches, seed)

        monkeypatch.setattr(data.Augmentation, "apply", spying)


def run_json(zoo_cli, *args: str) -> dict:
    result = zoo_cli(*RUN, *args)
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_only_training_images_are_augmented_once_per_epoch(zoo_cli, monkeypatch):
    spy = Spy(monkeypatch)

    metrics = run_json(zoo_cli, "--augment", "--epochs", "2")

    train_batches = -(-metrics["dataset"]["sizes"]["train"] // 8)
    assert spy.batches == [train_batches, train_batches]  # never validation or test


def test_a_frozen_backbone_caches_k_augmented_views_and_never_augments_the_rest(
    zoo_cli, monkeypatch
):
    spy = Spy(monkeypatch)

    metrics = run_json(zoo_cli, *FROZEN, "--augment", "--augment-views", "2", "--epochs", "2")

    train_batches = -(-metrics["dataset"]["sizes"]["train"] // 8)
    assert spy.batches == [train_batches, train_batches]  # one extraction per view
    assert set(metrics["feature_cache"]) == {
        "train view 1/2",
        "train view 2/2",
        "validation",
        "test",
    }


def sources(metrics: dict) -> dict[str, str]:
    return {split: used["source"] for split, used in metrics["feature_cache"].items()}


def test_the_cache_key_includes_the_augmentation_and_each_views_number(zoo_cli):
    two = run_json(zoo_cli, *FROZEN, "--augment", "--augment-views", "2")
    three = run_json(zoo_cli, *FROZEN, "--augment", "--augment-views", "3")
    stronger = run_json(zoo_cli, *FROZEN, "--augment", "--augment-views", "2",
                        "--augment-zoom", "0.3")  # fmt: skip
    plain = run_json(zoo_cli, *FROZEN)

    assert set(sources(two).values()) == {"extracted"}
    assert sources(three) == {
        "train view 1/3": "cache",
        "train view 2/3": "cache",
        "train view 3/3": "extracted",
        "validation": "cache",
        "test": "cache",
    }
    assert sources(stronger)["train view 1/2"] == "extracted"
    assert sources(plain) == {"train": "extracted", "validation": "cache", "test": "cache"}


def features(value: float, count: int = 10) -> feature_cache.Features:
    labels = np.arange(count, dtype=np.int32)
    return feature_cache.Features(np.full((count, 2), value, np.float32), labels, "extracted")


def test_each_epoch_draws_one_view_of_every_example():
    views = [features(0.0), features(1.0), features(2.0)]

    def epoch(seed: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = [(x.numpy(), y.numpy()) for x, y in feature_cache.batches(views, 4, seed)]
        return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])

    values, labels = epoch(seed=7)
    again, _ = epoch(seed=7)
    other, _ = epoch(seed=8)

    assert sorted(labels) == list(range(10))  # every example once
    assert set(values[:, 0]) == {0.0, 1.0, 2.0}  # from every view
    np.testing.assert_array_equal(values, again)
    assert not np.array_equal(values, other)


def test_the_saved_model_has_no_augmentation_and_predicts_the_same_every_time(
    zoo_cli, isolated: Path
):
    import keras

    from zoo import layers  # noqa: F401  (registers the Preprocess layer for loading)

    augmented = run_json(zoo_cli, "--augment", "--epochs", "2")
    plain = run_json(zoo_cli, "--epochs", "2")
    model = keras.models.load_model(isolated / augmented["run_dir"] / "model.keras")
    batch = np.random.default_rng(0).uniform(0, 255, size=(6, 32, 32, 3)).astype("float32")

    assert augmented["history"] != plain["history"]  # augmentation changed training
    assert not [layer for layer in _all_layers(model) if type(layer).__name__.startswith("Random")]
    first = model.predict(batch, verbose=0)
    np.testing.assert_array_equal(first, model.predict(batch, verbose=0))
    np.testing.assert_allclose(first, model(batch, training=True).numpy(), rtol=1e-6)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        yield from _all_layers(layer) if hasattr(layer, "layers") else ()
