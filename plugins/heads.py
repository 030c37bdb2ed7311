"""Classification heads: global average pooling and a dense output layer.

``gap_sigmoid`` is the tutorial's head (two classes, binary cross-entropy);
``gap_softmax`` generalises it to any number of classes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import zoo

_PARAMS = (zoo.Param("dropout", float, 0.0, "dropout rate before the output layer", minimum=0),)


def _pooled(features: Any, params: Mapping[str, Any]) -> Any:
    """Global average pooling of a feature map (a feature vector passes through)."""
    import keras

    x = features
    if len(features.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    elif len(features.shape) != 2:
        raise zoo.ZooError(
            f"the head needs a feature map [batch, h, w, c] or vector [batch, c], "
            f"got shape {tuple(features.shape)}.",
            expected="a backbone whose output has rank 2 or 4",
            fix="pick another backbone or head",
        )
    if params["dropout"] > 0:
        x = keras.layers.Dropout(params["dropout"], name="dropout")(x)
    return x


def build_sigmoid(features: Any, num_classes: int, params: Mapping[str, Any]) -> zoo.BuiltHead:
    import keras

    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="dense")(
        _pooled(features, params)
    )
    return zoo.BuiltHead(outputs=outputs, loss="binary_crossentropy", metrics=["accuracy"])


def build_softmax(features: Any, num_classes: int, params: Mapping[str, Any]) -> zoo.BuiltHead:
    import keras

    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="dense")(
        _pooled(features, params)
    )
    return zoo.BuiltHead(
        outputs=outputs, loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )


@zoo.hookimpl
def register_heads(register: Callable[[zoo.Head], None]) -> None:
    register(
        zoo.Head(
            name="gap_sigmoid",
            description="GlobalAveragePooling2D + Dense(1, sigmoid); binary cross-entropy",
            params=_PARAMS,
            build=build_sigmoid,
            min_classes=2,
            max_classes=2,
        )
    )
    register(
        zoo.Head(
            name="gap_softmax",
            description="GlobalAveragePooling2D + Dense(n, softmax); sparse categorical CE",
            params=_PARAMS,
            build=build_softmax,
            min_classes=2,
        )
    )
