"""--augment: random changes to training images only, with the feature cache too."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_RUN, run_zoo

from zoo.data import pipeline
from zoo.train.features import cache as feature_cache

RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--json"]
FROZEN = ["--set", "backbone.trainable=false"]
STRONG = pipeline.Augmentation(flip="both", rotation=0.2, zoom=0.2, translation=0.2, contrast=0.5)


def images(augmentation: pipeline.Augmentation | None, seed: int = 0) -> np.ndarray:
    """12 random 20x20 images through ``data.batches``, in order."""
    import tensorflow as tf

    pixels = np.random.default_rng(0).integers(0, 256, size=(12, 20, 20, 3), dtype=np.uint8)
    split = tf.data.Dataset.from_tensor_slices((pixels, np.zeros(12, dtype=np.int32)))
    augment = functools.partial(augmentation.apply, seed=seed) if augmentation else None
    batches = pipeline.batches(split, image_size=16, batch_size=5, augment=augment)
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
    assert pipeline.Augmentation(rotation=0.1).layers(seed=0)[0].factor == (-0.1, 0.1)
    assert pipeline.Augmentation().layers(seed=0) == []


def test_copies_follow_their_image_in_one_pass():
    import tensorflow as tf

    pixels = np.random.default_rng(0).uniform(0, 255, size=(5, 6, 6, 3)).astype("float32")
    batches = tf.data.Dataset.from_tensor_slices((pixels, np.arange(5))).batch(2)

    pairs = list(pipeline.Augmentation(flip="horizontal").copies(batches, 3))
    copies = np.concatenate([x.numpy() for x, _ in pairs]).reshape(5, 3, 6, 6, 3)
    labels = np.concatenate([y.numpy() for _, y in pairs])

    np.testing.assert_array_equal(labels, np.repeat(np.arange(5), 3))
    for image, its_copies in zip(pixels, copies, strict=True):
        for copy in its_copies:  # the image itself or its mirror image
            assert np.allclose(copy, image) or np.allclose(copy, image[:, ::-1])
    assert not np.allclose(copies[:, 0], copies[:, 1])  # copies differ from each other


class Spy:
    """Counts the batches of what each augmentation is given, by kind."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[tuple[str, int]] = []
        for name in ("apply", "copies"):
            self._spy(monkeypatch, name)

    def _spy(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        original = getattr(pipeline.Augmentation, name)

        def spying(augmentation, batches, *args, **kwargs):
            self.batches.append((name, int(batches.cardinality())))
            return original(augmentation, batches, *args, **kwargs)

        monkeypatch.setattr(pipeline.Augmentation, name, spying)


def run_json(zoo_cli, *args: str) -> dict:
    result = zoo_cli(*RUN, *args)
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_only_training_images_are_augmented_once_per_epoch(zoo_cli, monkeypatch):
    spy = Spy(monkeypatch)

    metrics = run_json(zoo_cli, "--augment", "--epochs", "2")

    train_batches = -(-metrics["dataset"]["sizes"]["train"] // 8)
    assert spy.batches == [("apply", train_batches)] * 2  # never validation or test


def test_a_frozen_backbone_caches_k_copies_once_and_never_augments_the_rest(zoo_cli, monkeypatch):
    spy = Spy(monkeypatch)

    metrics = run_json(zoo_cli, *FROZEN, "--augment", "--augment-views", "2", "--epochs", "2")

    train_batches = -(-metrics["dataset"]["sizes"]["train"] // 8)
    assert spy.batches == [("copies", train_batches)]  # one extraction for all epochs


def sources(metrics: dict) -> dict[str, str]:
    return {split: used["source"] for split, used in metrics["feature_cache"].items()}


def test_the_cache_key_includes_the_augmentation_and_the_number_of_copies(zoo_cli):
    two = run_json(zoo_cli, *FROZEN, "--augment", "--augment-views", "2")
    again = run_json(zoo_cli, *FROZEN, "--augment", "--augment-views", "2")
    three = run_json(zoo_cli, *FROZEN, "--augment", "--augment-views", "3")
    stronger = run_json(zoo_cli, *FROZEN, "--augment", "--augment-views", "2",
                        "--augment-zoom", "0.3")  # fmt: skip
    plain = run_json(zoo_cli, *FROZEN)

    assert set(sources(two).values()) == {"extracted"}
    assert set(sources(again).values()) == {"cache"}
    assert again["history"] == two["history"]
    for changed in (three, stronger, plain):
        assert sources(changed) == {"train": "extracted", "validation": "cache", "test": "cache"}


def test_each_epoch_draws_one_copy_of_every_example():
    count = 10
    copies = np.repeat(np.arange(3.0)[None, :, None], count, axis=0) * np.ones((1, 1, 2))
    views = feature_cache.Features(copies.astype(np.float32), np.arange(count, dtype=np.int32),
                                   "extracted", views=3)  # fmt: skip

    def epoch(seed: int | None) -> tuple[np.ndarray, np.ndarray]:
        pairs = [(x.numpy(), y.numpy()) for x, y in views.batches(4, seed)]
        return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])

    values, labels = epoch(seed=7)
    again, _ = epoch(seed=7)
    other, _ = epoch(seed=8)
    in_order, order = epoch(seed=None)

    assert values.shape == (count, 2)
    assert sorted(labels) == list(range(count))  # every example once
    assert set(values[:, 0]) == {0.0, 1.0, 2.0}  # from every copy
    np.testing.assert_array_equal(values, again)
    assert not np.array_equal(values, other)
    assert list(order) == list(range(count)) and set(in_order[:, 0]) == {0.0}


def test_the_saved_model_has_no_augmentation_and_predicts_the_same_every_time(
    zoo_cli, isolated: Path
):
    import keras

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


def photo_folder(root: Path, per_class: int = 10) -> Path:
    """Three classes of noisy 20-40 px JPEGs, told apart by their colour."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, colour in enumerate(((200, 40, 40), (40, 200, 40), (40, 40, 200))):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True)
        for index in range(per_class):
            side = int(rng.integers(20, 41))
            pixels = np.clip(rng.normal(colour, 30, size=(side, side, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{index}.jpg")
    return root


def test_a_photo_folder_trains_augmented_and_keeps_its_best_epoch(isolated: Path):
    photos = photo_folder(isolated / "photos")

    result = run_zoo(
        "run", "image_folder", "shapes_cnn", "gap_softmax", "--set", f"dataset.path={photos}",
        "--image-size", "24", "--batch-size", "8", "--epochs", "4", "--learning-rate", "0.01",
        "--augment", "--augment-views", "2", "--json", cwd=isolated,
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)
    kept, val_losses = metrics["kept"], [row["val_loss"] for row in metrics["history"]]
    assert kept["keep"] == "best" and kept["epoch"] == 1 + val_losses.index(min(val_losses))
    assert metrics["feature_cache"]["train"]["source"] == "extracted"
    assert "train (2 augmented copies of each image)" in result.stderr
    assert f"kept epoch {kept['epoch']} of 4" in result.stderr
