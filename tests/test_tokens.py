"""Token sequences [batch, tokens, c]: the built-in heads pool them, backbones say how,
and the contract kit checks both.

A local plugin's backbone cuts images into patches, as a vision transformer does, and
declares ``token_pooling`` as its ``pooling`` parameter says (empty: nothing declared).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import write

import zoo
import zoo.testing
from zoo.model.assemble import ComponentError

TOKENS_PLUGIN = """
import zoo


def build(image_shape, params):
    import keras

    patches = image_shape[0] // 4
    model = keras.Sequential(
        [
            keras.Input(image_shape),
            keras.layers.Conv2D(6, 4, strides=4, name="patchify"),
            keras.layers.Reshape((patches * patches, 6), name="tokens"),
        ],
        name="patches",
    )
    model.trainable = False
    return zoo.BuiltBackbone(model, "unit", token_pooling=params["pooling"] or None)


@zoo.hookimpl
def register_backbones(register):
    register(zoo.Backbone(
        name="patches",
        description="4x4 patches as a token sequence",
        params=[zoo.Param("pooling", str, "", "token_pooling to declare; empty: none")],
        build=build,
        min_image_size=4,
    ))
"""


#: A head that pools feature maps only, and passes a token sequence on to Dense.
FLAT_HEAD = """
import zoo


def build(features, num_classes, params):
    import keras

    x = features
    if len(features.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return zoo.BuiltHead(outputs=outputs, loss="sparse_categorical_crossentropy")


@zoo.hookimpl
def register_heads(register):
    register(zoo.Head(name="flat", description="Pools feature maps only", build=build))
"""


@pytest.fixture
def registry(isolated: Path) -> zoo.Registry:
    write(isolated / "patches.py", TOKENS_PLUGIN)
    write(isolated / "registry.toml", '[plugins]\nload = ["patches.py"]\n')
    return zoo.load_registry()


def head_layers(registry: zoo.Registry, *sets: str) -> list[str]:
    resolved = zoo.resolve_run(
        registry, ["shapes", "patches", "gap_softmax"], settings={"image_size": 16}, sets=sets
    )
    head = zoo.build_model(resolved, num_classes=2).head
    return [layer.name for layer in head.layers[1:]]


@pytest.mark.parametrize(
    ("pooling", "layer", "expected"),
    [
        ("class_token", "class_token", lambda t: t[:, 0]),
        ("mean", "token_mean", lambda t: t.mean(axis=1)),
    ],
)
def test_the_heads_pool_the_class_token_or_the_mean(pooling, layer, expected):
    import keras

    head = zoo.load_registry(zoo.LoadOptions(builtins_only=True)).get("head", "gap_softmax")
    features = keras.Input((5, 8))
    built = head.component.build(features, 3, {"dropout": 0.0, "token_pooling": pooling})
    pooled = keras.Model(features, keras.Model(features, built.outputs).get_layer(layer).output)
    tokens = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")

    np.testing.assert_allclose(np.asarray(pooled(tokens)), expected(tokens), rtol=1e-6)


@pytest.mark.parametrize(
    ("sets", "pooled_by"),
    [
        (["backbone.pooling=class_token"], ["class_token_crop", "class_token"]),
        (["backbone.pooling=mean"], ["token_mean"]),
        ([], ["token_mean"]),  # nothing declared: auto is the mean
        (["backbone.pooling=class_token", "head.token_pooling=mean"], ["token_mean"]),
    ],
)
def test_auto_pools_as_the_backbone_declares_unless_the_head_is_told(registry, sets, pooled_by):
    assert head_layers(registry, *sets) == [*pooled_by, "dense"]


def test_a_backbone_declaring_an_unknown_pooling_is_named(registry):
    with pytest.raises(ComponentError, match=r"backbone 'patches' .* declares token_pooling='cls'"):
        head_layers(registry, "backbone.pooling=cls")

    report = zoo.testing.check_components(
        [registry.get("backbone", "patches")], params={"patches": {"pooling": "cls"}}
    )
    assert [problem.check for problem in report.problems] == ["token_pooling"]


def test_the_kit_accepts_a_backbone_of_token_sequences(registry):
    report = zoo.testing.check_components(
        [registry.get("backbone", "patches")], params={"patches": {"pooling": "class_token"}}
    )

    assert report.ok, str(report)


def test_the_kit_reports_a_head_that_breaks_on_token_sequences(isolated: Path):
    write(isolated / "flat_head.py", FLAT_HEAD)
    write(isolated / "registry.toml", '[plugins]\nload = ["flat_head.py"]\n')

    report = zoo.testing.check_components([zoo.load_registry().get("head", "flat")])

    assert report.problems
    assert {problem.check for problem in report.problems} == {
        "output on features [5, 8] with 2 classes",
        "training step on features [5, 8] with 2 classes",
    }
