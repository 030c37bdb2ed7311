"""Unfreezing the top of a backbone for a second, fine-tuning stage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.errors import ZooError, closest

if TYPE_CHECKING:
    import keras


def check(backbone: keras.Model, spec: str) -> None:
    """Raise the ZooError ``unfreeze_top`` would raise, before any training."""
    _start_index(_layers(backbone), spec, backbone.name)


def _layers(backbone: keras.Model) -> list[keras.layers.Layer]:
    """The backbone's layers in order, an encoder opened up into its blocks.

    KerasHub's ViT, DeiT and DINOv2 hold all their transformer blocks in one encoder
    layer; counted as one, "the top 4 layers" would be the whole network. A layer whose
    sublayers include two or more composite layers of one class (the blocks) is
    replaced by its sublayers, so the count is in blocks.
    """
    import keras

    found: list[keras.layers.Layer] = []
    for layer in backbone.layers:
        found += _blocks(layer) or [layer]
    return [layer for layer in found if not isinstance(layer, keras.layers.InputLayer)]


def _blocks(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """``layer``'s sublayers if two or more of them are composite layers of one class."""
    # Keras 3 has no public list of a layer's sublayers; its own trainable setter uses this.
    children = list(layer._flatten_layers(include_self=False, recursive=False))
    composite = [type(c) for c in children if list(c._flatten_layers(include_self=False))]
    return children if any(composite.count(kind) > 1 for kind in composite) else []


def unfreeze_top(backbone: keras.Model, spec: str) -> list[str]:
    """Make the top of ``backbone`` trainable; return the names of the unfrozen layers.

    Args:
        backbone: The backbone model (frozen after the first stage).
        spec: A number N (the top N layers) or a layer name (that layer and every
            layer after it).

    BatchNormalization layers stay frozen, also those inside a block (KerasHub's
    MobileNet and EfficientNet have them): in Keras 3 a BatchNormalization layer whose
    parent is unfrozen updates its moving statistics even when the graph was built with
    ``training=False`` (keras-team/keras#20285), which wrecks pretrained features when
    fine-tuning with small batches. Frozen, it runs in inference mode.

    Raises:
        ZooError: N is out of range, or no layer has that name.
    """
    import keras

    layers = _layers(backbone)
    start = _start_index(layers, spec, backbone.name)
    backbone.trainable = True
    unfrozen = []
    for index, layer in enumerate(layers):
        layer.trainable = index >= start
        for inner in layer._flatten_layers(include_self=True):
            if isinstance(inner, keras.layers.BatchNormalization):
                inner.trainable = False
        if layer.trainable_weights:
            unfrozen.append(layer.name)
    return unfrozen


def _start_index(layers: list[keras.layers.Layer], spec: str, owner: str) -> int:
    text = spec.strip()
    if text.isdigit():
        count = int(text)
        if not 1 <= count <= len(layers):
            raise ZooError(
                f"--fine-tune-layers {count}: backbone '{owner}' has {len(layers)} layers.",
                expected=f"a number from 1 to {len(layers)}, or a layer name",
                fix=f"pass e.g. --fine-tune-layers {min(20, len(layers))}",
                got=text,
            )
        return len(layers) - count
    names = [layer.name for layer in layers]
    if text in names:
        return names.index(text)
    hint = closest(text, names)
    raise ZooError(
        f"backbone '{owner}' has no layer named '{text}'.",
        expected="a number of top layers, or the name of the first layer to unfreeze",
        fix=(f"did you mean '{hint[0]}'? " if hint else "")
        + f"the last layers are: {', '.join(names[-5:])}",
        got=text,
    )
