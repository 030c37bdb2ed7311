"""Pooled caching: a head that begins with global pooling has its pooled vector cached.

The built-in heads declare their pooling (``BuiltHead.pooled``); zoo caches what it
gives instead of the backbone's map, trains the rest of the head on it, and saves the
whole model. A head that does not declare it is cached as a map, as before.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_RUN, history_numbers, write

import zoo
from zoo.plugins import load_registry

#: gap_sigmoid as a third party that does not declare its pooling would write it.
MAP_HEAD_PLUGIN = """
import dataclasses

import zoo


def build(features, num_classes, params):
    from zoo.builtins.heads import build_sigmoid

    return dataclasses.replace(build_sigmoid(features, num_classes, params), pooled=None)


@zoo.hookimpl
def register_heads(register):
    from zoo.builtins.heads import _PARAMS

    register(zoo.Head(name="gap_sigmoid_map", description="gap_sigmoid, cached as a map",
                      params=_PARAMS, build=build, max_classes=2))
"""


def cached_shapes(metrics: dict) -> dict[str, list[int]]:
    """Each split's cached feature shape, from the cache entries the run used."""
    folder = Path(os.environ["ZOO_CACHE_DIR"]) / "features"
    return {
        split: json.loads((folder / used["key"] / "meta.json").read_text())["shape"]
        for split, used in metrics["feature_cache"].items()
    }


def test_pooled_caching_gives_the_map_cached_results_within_1e_5(zoo_cli, isolated: Path):
    write(isolated / "map_head.py", MAP_HEAD_PLUGIN)
    write(isolated / "registry.toml", '[plugins]\nload = ["map_head.py"]\n')
    frozen = [*TINY_RUN, "--epochs", "2", "--set", "backbone.trainable=false", "--json"]

    pooled = zoo_cli("run", "shapes", "small_cnn", "gap_sigmoid", *frozen).json()
    mapped = zoo_cli("run", "shapes", "small_cnn", "gap_sigmoid_map", *frozen).json()

    assert cached_shapes(pooled)["train"] == [64]  # small_cnn's 64 channels, pooled
    assert cached_shapes(mapped)["train"] == [2, 2, 64]  # its map at 32x32
    assert history_numbers(pooled) == pytest.approx(history_numbers(mapped), rel=1e-5)
    assert pooled["test"] == pytest.approx(mapped["test"], rel=1e-5)


def test_the_saved_model_is_the_whole_backbone_and_head(zoo_cli, isolated: Path):
    import keras

    frozen = [*TINY_RUN, "--set", "backbone.trainable=false", "--json"]
    metrics = zoo_cli("run", "shapes", "small_cnn", "gap_sigmoid", *frozen).json()

    assert cached_shapes(metrics)["test"] == [64]
    model = keras.models.load_model(isolated / metrics["run_dir"] / "model.keras")
    head = model.get_layer("head")
    assert [layer.name for layer in head.layers][1:] == ["global_average_pooling2d", "dense"]
    assert model.count_params() == metrics["parameters"]["total"]


@pytest.mark.parametrize(
    ("pooling", "expected"),
    [("class_token", lambda tokens: tokens[:, 0]), ("mean", lambda t: t.mean(axis=1))],
)
def test_the_pooled_vector_is_what_the_heads_own_pooling_gives(tiny_presets, pooling, expected):
    resolved = zoo.resolve_run(
        load_registry(),
        ["shapes", "keras_hub", "gap_softmax"],
        settings={"image_size": tiny_presets.image_size},
        sets=[f"backbone.preset={tiny_presets.vit}", f"head.token_pooling={pooling}"],
    )
    model = zoo.build_model(resolved, 3)
    images = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 3)).astype("float32")

    tokens = model.features.predict_on_batch(images)
    vectors = model.pooled.features.predict_on_batch(images)

    assert np.allclose(vectors, expected(tokens), rtol=1e-6, atol=1e-6)
    whole = model.model.predict_on_batch(images)
    assert np.allclose(model.pooled.head.predict_on_batch(vectors), whole, atol=1e-6)


def test_a_vector_backbone_is_cached_as_it_is(zoo_cli, isolated: Path):
    write(isolated / "flat.py", FLAT_BACKBONE_PLUGIN)
    write(isolated / "registry.toml", '[plugins]\nload = ["flat.py"]\n')

    metrics = zoo_cli("run", "shapes", "flat", "gap_sigmoid", *TINY_RUN, "--json").json()

    assert cached_shapes(metrics)["train"] == [4]


FLAT_BACKBONE_PLUGIN = """
import zoo


def build(image_shape, params):
    import keras

    model = keras.Sequential(
        [keras.Input(image_shape), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)]
    )
    model.trainable = False
    return zoo.BuiltBackbone(model=model, preprocessing="unit", pretrained=True)


@zoo.hookimpl
def register_backbones(register):
    register(zoo.Backbone(name="flat", description="A feature vector", build=build))
"""


def test_a_head_whose_pooling_holds_weights_is_refused_naming_it():
    from zoo.model.assemble import ComponentError

    class WeightedPooling:
        @staticmethod
        @zoo.hookimpl
        def register_heads(register):
            def build(features, num_classes, params):
                import keras

                pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Dense(3)(features))
                outputs = keras.layers.Dense(1, activation="sigmoid")(pooled)
                return zoo.BuiltHead(outputs, "binary_crossentropy", pooled=pooled)

            register(zoo.Head(name="weighted", description="w", build=build, max_classes=2))

    from zoo.plugins import LoadOptions

    registry = load_registry(LoadOptions(builtins_only=True, extra=[WeightedPooling]))
    resolved = zoo.resolve_run(registry, ["shapes", "small_cnn", "weighted"])

    with pytest.raises(ComponentError, match=r"head 'weighted' .* its pooling holds weights"):
        zoo.build_model(resolved, 2)
