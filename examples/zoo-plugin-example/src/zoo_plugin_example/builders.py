"""Builders of ``separable_cnn`` and ``attention_pool``. Keras is imported inside them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import zoo


def min_image_size(blocks: int) -> int:
    """The smallest side that leaves one pixel after the stride-2 stem and the pools.

    The stem halves the side, rounding up; each block's 2x2 pool halves it, rounding
    down. ``2 ** blocks`` pixels must reach the blocks: ``2 ** (blocks + 1) - 1`` in.
    """
    return 2 ** (blocks + 1) - 1


def build_separable_cnn(
    image_shape: tuple[int, int, int], params: Mapping[str, Any]
) -> zoo.BuiltBackbone:
    """Conv 3x3/2 stem, then blocks of SeparableConv 3x3 + ReLU + MaxPool, widths doubling."""
    import keras

    blocks, width = params["blocks"], params["width"]
    smallest = min_image_size(blocks)
    if image_shape[0] < smallest or image_shape[1] < smallest:
        raise zoo.ZooError(
            f"separable_cnn with {blocks} blocks needs images of at least {smallest}x{smallest}.",
            expected=f"--image-size {smallest} or more",
            fix=f"pass --image-size {smallest}, or fewer blocks (--set backbone.blocks=N)",
            got=image_shape[:2],
        )
    layers: list[Any] = [
        keras.Input(image_shape),
        keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu", name="stem"),
    ]
    for i in range(blocks):
        layers += [
            keras.layers.SeparableConv2D(
                width * 2 ** (i + 1), 3, padding="same", activation="relu", name=f"sep{i + 1}"
            ),
            keras.layers.MaxPooling2D(2, name=f"pool{i + 1}"),
        ]
    model = keras.Sequential(layers, name="separable_cnn")
    model.trainable = params["trainable"]
    # Trained from scratch on pixels scaled to -1..1: zoo's "tf" preprocessing mode.
    return zoo.BuiltBackbone(model=model, preprocessing="tf")


def build_attention_pool(
    features: Any, num_classes: int, params: Mapping[str, Any]
) -> zoo.BuiltHead:
    """AttentionPooling + Dropout + Dense(n, softmax), on a feature map only."""
    import keras

    from zoo_plugin_example.layers import AttentionPooling

    if len(features.shape) != 4:
        raise zoo.ZooError(
            f"attention_pool pools over positions, so it needs a feature map "
            f"[batch, h, w, c]; the backbone gives shape {tuple(features.shape)}.",
            expected="a backbone whose output is a feature map (rank 4)",
            fix="use a head that takes vectors, such as gap_softmax, or a backbone "
            "without global pooling",
        )
    x = AttentionPooling(name="attention_pooling")(features)
    if params["dropout"] > 0:
        x = keras.layers.Dropout(params["dropout"], name="dropout")(x)
    # float32 output, so mixed precision cannot saturate the softmax.
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="dense")(
        x
    )
    return zoo.BuiltHead(
        outputs=outputs, loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
