"""Classification heads: global pooling and a dense output layer.

``gap_sigmoid`` is the tutorial's head (two classes, binary cross-entropy);
``gap_softmax`` generalises it to any number of classes. Both pool what the backbone
gives: a feature map by global average pooling, a token sequence (ViT, DeiT, DINOv2,
CLIP) by its class token or its mean (the ``token_pooling`` parameter; ``auto`` takes
what the backbone declares), and a vector passes through. Both declare their pooling
(``BuiltHead.pooled``), so zoo caches a frozen backbone's features pooled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import zoo

_PARAMS = (
    zoo.Param("dropout", float, 0.0, "dropout rate before the output layer", minimum=0, below=1),
    zoo.Param(
        "token_pooling",
        str,
        "auto",
        "how token sequences [batch, tokens, c] are pooled: class_token (the first "
        "token), mean, or auto (what the backbone declares, else mean)",
        choices=("auto", *zoo.TOKEN_POOLING),
    ),
)


def _pooled(features: Any, params: Mapping[str, Any]) -> tuple[Any, Any]:
    """A feature map or token sequence pooled to a vector (a vector passes through).

    Returns the pooled vector, as ``BuiltHead.pooled`` declares it (``None`` for a
    vector: nothing is pooled), and what the output layer takes: the vector after
    dropout.
    """
    import keras

    rank = len(features.shape)
    if rank == 4:
        pooled = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(features)
    elif rank == 3:
        pooled = _pooled_tokens(features, params["token_pooling"])
    elif rank == 2:
        pooled = None
    else:
        raise zoo.ZooError(
            f"the head needs a feature map [batch, h, w, c], a token sequence "
            f"[batch, tokens, c] or a vector [batch, c], got shape {tuple(features.shape)}.",
            expected="a backbone whose output has rank 2, 3 or 4",
            fix="pick another backbone or head",
        )
    x = features if pooled is None else pooled
    if params["dropout"] > 0:
        x = keras.layers.Dropout(params["dropout"], name="dropout")(x)
    return pooled, x


def _pooled_tokens(tokens: Any, how: str) -> Any:
    """The class token (the first one) or the mean over tokens; ``auto`` is the mean.

    Plain Keras layers only (a crop to the first token, then a flatten), so a saved
    model loads without zoo.
    """
    import keras

    if how != "class_token":
        return keras.layers.GlobalAveragePooling1D(name="token_mean")(tokens)
    count = tokens.shape[1]
    if count is None:
        raise zoo.ZooError(
            "token_pooling=class_token needs a known number of tokens; the backbone "
            f"gives shape {tuple(tokens.shape)}.",
            expected="a backbone with a fixed input size",
            fix="--set head.token_pooling=mean",
        )
    first = keras.layers.Cropping1D((0, count - 1), name="class_token_crop")(tokens)
    return keras.layers.Flatten(name="class_token")(first)


def build_sigmoid(features: Any, num_classes: int, params: Mapping[str, Any]) -> zoo.BuiltHead:
    import keras

    pooled, x = _pooled(features, params)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="dense")(x)
    return zoo.BuiltHead(
        outputs=outputs, loss="binary_crossentropy", metrics=["accuracy"], pooled=pooled
    )


def build_softmax(features: Any, num_classes: int, params: Mapping[str, Any]) -> zoo.BuiltHead:
    import keras

    pooled, x = _pooled(features, params)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="dense")(
        x
    )
    return zoo.BuiltHead(
        outputs=outputs,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        pooled=pooled,
    )


@zoo.hookimpl
def register_heads(register: Callable[[zoo.Head], None]) -> None:
    register(
        zoo.Head(
            name="gap_sigmoid",
            description="Global average pooling (or class token) + Dense(1, sigmoid); "
            "binary cross-entropy",
            params=_PARAMS,
            build=build_sigmoid,
            min_classes=2,
            max_classes=2,
        )
    )
    register(
        zoo.Head(
            name="gap_softmax",
            description="Global average pooling (or class token) + Dense(n, softmax); "
            "sparse categorical CE",
            params=_PARAMS,
            build=build_softmax,
            min_classes=2,
        )
    )
