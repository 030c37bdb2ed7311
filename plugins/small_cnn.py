"""The tutorial's small CNN, trained from scratch.

3 x (Conv2D 3x3 + ReLU, MaxPool 2x2) with 32, 32 and 64 filters. With ``gap_sigmoid``
on top it is the tutorial's model: 28,705 parameters, all trainable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import zoo

#: The most filters of a block: past this a layer's weights no longer fit in memory.
MAX_FILTERS = 4096


def filters(params: Mapping[str, Any]) -> list[int]:
    try:
        found = [int(f) for f in str(params["filters"]).split(",")]
    except ValueError:
        found = []
    if not found or min(found) < 1 or max(found) > MAX_FILTERS:
        raise zoo.ZooError(
            "small_cnn: filters must be a comma-separated list of positive integers.",
            expected=f"for example 32,32,64 (one conv block per number, each 1 to {MAX_FILTERS})",
            fix="--set backbone.filters=32,32,64",
            got=params["filters"],
        )
    return found


def min_image_size(blocks: int) -> int:
    """The smallest side that leaves one pixel after ``blocks`` x (conv 3x3, pool 2x2)."""
    size = 1
    for _ in range(blocks):
        size = size * 2 + 2
    return size


def build(image_shape: tuple[int, int, int], params: Mapping[str, Any]) -> zoo.BuiltBackbone:
    import keras

    blocks = filters(params)
    smallest = min_image_size(len(blocks))
    if image_shape[0] < smallest:
        raise zoo.ZooError(
            f"small_cnn with {len(blocks)} blocks needs images of at least {smallest}x{smallest}.",
            expected=f"--image-size {smallest} or more",
            fix=f"pass --image-size {smallest}, or fewer filters",
            got=image_shape[0],
        )
    layers: list[keras.layers.Layer] = [keras.Input(image_shape)]
    for i, count in enumerate(blocks, 1):
        layers.append(keras.layers.Conv2D(count, 3, activation="relu", name=f"conv{i}"))
        layers.append(keras.layers.MaxPooling2D(2, name=f"pool{i}"))
    model = keras.Sequential(layers, name="small_cnn")
    model.trainable = params["trainable"]
    return zoo.BuiltBackbone(model=model, preprocessing="unit", pretrained=False)


@zoo.hookimpl
def register_backbones(register: Callable[[zoo.Backbone], None]) -> None:
    register(
        zoo.Backbone(
            name="small_cnn",
            description="The tutorial's CNN from scratch: 3 x (Conv 3x3 + MaxPool), 32/32/64",
            params=(
                zoo.Param("filters", str, "32,32,64", "filters per conv block, comma-separated"),
                zoo.Param("trainable", bool, True, "train the backbone (False freezes it)"),
            ),
            build=build,
            min_image_size=min_image_size(3),
            family="small CNN",
            parameters=28_640,  # the default filters; the tutorial's 28,705 with gap_sigmoid
            source="zoo, trained from scratch",
        )
    )
