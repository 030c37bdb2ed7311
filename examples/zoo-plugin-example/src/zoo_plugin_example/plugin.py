"""The plugin module zoo loads (entry point ``example`` in the group ``zoo``).

One ``@zoo.hookimpl`` per hook; each registers entries built elsewhere in the package.
Nothing here imports TensorFlow or Keras: builders do, when a component is used.
"""

from __future__ import annotations

from collections.abc import Callable

import zoo

from zoo_plugin_example import builders
from zoo_plugin_example.gratings import DATASET


@zoo.hookimpl
def register_datasets(register: Callable[[zoo.Dataset], None]) -> None:
    register(DATASET)


@zoo.hookimpl
def register_backbones(register: Callable[[zoo.Backbone], None]) -> None:
    register(
        zoo.Backbone(
            name="separable_cnn",
            description="Depthwise-separable CNN from scratch: Conv/2 stem + 3 x (SepConv, Pool)",
            params=(
                zoo.Param("width", int, 16, "stem filters; each block doubles them", minimum=1),
                zoo.Param("blocks", int, 3, "SeparableConv + MaxPool blocks", minimum=1),
                zoo.Param("trainable", bool, True, "train the backbone (False freezes it)"),
            ),
            build=builders.build_separable_cnn,
            min_image_size=builders.min_image_size(3),
        )
    )


@zoo.hookimpl
def register_heads(register: Callable[[zoo.Head], None]) -> None:
    register(
        zoo.Head(
            name="attention_pool",
            description="Attention pooling over positions + Dropout + Dense(n, softmax)",
            params=(zoo.Param("dropout", float, 0.1, "dropout rate before the output", minimum=0),),
            build=builders.build_attention_pool,
            min_classes=2,
        )
    )
