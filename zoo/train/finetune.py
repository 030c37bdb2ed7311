"""Unfreezing the top of a backbone for a second, fine-tuning stage, and saying what was counted.

``--fine-tune-layers N`` counts the backbone's layers from the top, every layer alike:
activations, pooling and additions count, though only layers with weights can learn.
:class:`Unfrozen` says so in one line, and ``zoo info BACKBONE --layers``
(:func:`list_layers`) shows which ``N`` starts where.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError, closest
from zoo.runtime.loader import keras

if TYPE_CHECKING:
    from zoo.components import Backbone
    from zoo.registry import Entry


@dataclass(frozen=True)
class Unfrozen:
    """What ``--fine-tune-layers`` unfroze.

    Args:
        spec: What was asked: a number of top layers or the first layer's name.
        total: The backbone's layers (its input layer not counted).
        top: The layers from the first unfrozen one to the last.
        layers: Those of the ``top`` that hold weights and were unfrozen.
        batch_norm: The BatchNormalization layers among the ``top``, kept frozen.
    """

    spec: str
    total: int
    top: int
    layers: tuple[str, ...]
    batch_norm: tuple[str, ...] = ()

    def describe(self) -> str:
        """``--fine-tune-layers 30: the top 30 of 175 layers, 9 of which hold weights
        and were unfrozen; 3 BatchNormalization layers kept frozen``."""
        which = f"the top {self.top}"
        if not self.spec.isdigit():
            which = f"from '{self.spec}' on, {which}"
        text = (
            f"--fine-tune-layers {self.spec}: {which} of {self.total} layers, "
            f"{len(self.layers)} of which hold weights and were unfrozen"
        )
        if self.batch_norm:
            text += f"; {len(self.batch_norm)} BatchNormalization kept frozen"
        return text


def _layers(backbone: keras.Model) -> list[keras.layers.Layer]:
    """The backbone's layers in order, an encoder opened up into its blocks.

    KerasHub's ViT, DeiT and DINOv2 hold all their transformer blocks in one encoder
    layer; counted as one, "the top 4 layers" would be the whole network. A layer whose
    sublayers include two or more composite layers of one class (the blocks) is
    replaced by its sublayers, so the count is in blocks.
    """
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


@dataclass(frozen=True)
class LayerInfo:
    """One backbone layer as ``zoo info BACKBONE --layers`` lists it.

    ``top`` is the ``--fine-tune-layers`` number whose first unfrozen layer this is.
    """

    top: int
    name: str
    type: str
    params: int
    holds_weights: bool
    batch_norm: bool


def check(backbone: keras.Model, spec: str, owner: str) -> None:
    """Raise the ZooError ``unfreeze_top`` would raise, before any training.

    ``owner`` is the backbone component's name, which errors use (the Keras model's
    name can be another).
    """
    _start_index(_layers(backbone), spec, owner)


def unfreeze_top(backbone: keras.Model, spec: str, owner: str) -> Unfrozen:
    """Make the top of ``backbone`` trainable; say what was unfrozen.

    Args:
        backbone: The backbone model (frozen after the first stage).
        spec: A number N (the top N layers) or a layer name (that layer and every
            layer after it).
        owner: The backbone component's name, for errors.

    BatchNormalization layers stay frozen, also those inside a block (KerasHub's
    MobileNet and EfficientNet have them): in Keras 3 a BatchNormalization layer whose
    parent is unfrozen updates its moving statistics even when the graph was built with
    ``training=False`` (keras-team/keras#20285), which wrecks pretrained features when
    fine-tuning with small batches. Frozen, it runs in inference mode.

    Raises:
        ZooError: N is out of range, or no layer has that name.
    """
    layers = _layers(backbone)
    start = _start_index(layers, spec, owner)
    backbone.trainable = True
    unfrozen, batch_norm = [], []
    for index, layer in enumerate(layers):
        layer.trainable = index >= start and not _is_batch_norm(layer)
        if index < start:
            continue
        for norm in _batch_norms(layer):
            norm.trainable = False
            batch_norm.append(norm.name)
        if layer.trainable_weights:
            unfrozen.append(layer.name)
    top = len(layers) - start
    return Unfrozen(spec.strip(), len(layers), top, tuple(unfrozen), tuple(batch_norm))


def list_layers(backbone: keras.Model) -> list[LayerInfo]:
    """Every layer of ``backbone``, bottom first, with the ``--fine-tune-layers`` N
    that starts there."""
    layers = _layers(backbone)
    return [
        LayerInfo(
            top=len(layers) - index,
            name=layer.name,
            type=type(layer).__name__,
            params=layer.count_params() if layer.built else 0,
            holds_weights=bool(layer.weights),
            batch_norm=_is_batch_norm(layer),
        )
        for index, layer in enumerate(layers)
    ]


@dataclass(frozen=True)
class BuiltForListing:
    """A backbone built to list its layers, and with which weights."""

    model: keras.Model
    params: Mapping[str, Any]
    note: str | None = None


def build_for_listing(entry: Entry[Backbone], image_size: int) -> BuiltForListing:
    """Build ``entry`` with its default parameters to list its layers.

    Layer names do not depend on the weights, so when the default weights cannot be
    loaded here (offline, say) and the backbone has a ``weights`` parameter, it is
    built with ``weights=none`` instead, and ``note`` says why.

    Raises:
        ZooError: it cannot be built at all; the error says why.
    """
    from zoo.params import resolve

    layers = [(entry.meta.source or "registry.toml", entry.meta.defaults)]
    params = resolve("backbone", entry.name, entry.params, layers)
    shape = (image_size, image_size, 3)
    try:
        return BuiltForListing(_build(entry, shape, params), params)
    except ZooError as exc:
        if entry.component.param("weights") is None or str(params["weights"]) == "none":
            raise
        reason = exc.what.rstrip(".")
    params = {**params, "weights": "none"}
    note = f"built with weights=none: the default weights could not be loaded ({reason})"
    return BuiltForListing(_build(entry, shape, params), params, note)


def layers_json(entry: Entry[Backbone]) -> dict[str, Any]:
    """``zoo info BACKBONE --layers`` as data: the backbone built at the default image
    size (or its minimum, if larger), with which parameters, and its layers."""
    from zoo.config.settings import BY_NAME

    size = max(entry.component.min_image_size, BY_NAME["image_size"].default)
    built = build_for_listing(entry, size)
    return {
        "backbone": entry.qualified_name,
        "image_size": size,
        "params": dict(built.params),
        "note": built.note,
        "layers": [asdict(row) for row in list_layers(built.model)],
    }


def _build(entry: Entry[Backbone], shape: tuple[int, int, int], params: Any) -> keras.Model:
    from zoo.model.assemble import build_backbone

    return build_backbone(entry, shape, params).model


def _is_batch_norm(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def _batch_norms(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """``layer`` itself if it is a BatchNormalization layer, and those inside it."""
    return [inner for inner in layer._flatten_layers(include_self=True) if _is_batch_norm(inner)]


def _start_index(layers: Sequence[keras.layers.Layer], spec: str, owner: str) -> int:
    text = spec.strip()
    listing = f"`zoo info {owner} --layers` lists them"
    if text.isdigit():
        count = int(text)
        if not 1 <= count <= len(layers):
            raise ZooError(
                f"--fine-tune-layers {count}: backbone '{owner}' has {len(layers)} layers.",
                expected=f"a number from 1 to {len(layers)}, or a layer name",
                fix=f"pass e.g. --fine-tune-layers {min(20, len(layers))}; {listing}",
                got=text,
            )
        return len(layers) - count
    names = [layer.name for layer in layers]
    if text in names:
        return names.index(text)
    hint = closest(text, names)
    raise ZooError(
        f"--fine-tune-layers {text}: backbone '{owner}' has no layer named '{text}'.",
        expected="a number of top layers, or the name of the first layer to unfreeze",
        fix=(f"did you mean '{hint[0]}'? " if hint else "")
        + f"its last layers are {', '.join(names[-5:])}; {listing}",
        got=text,
    )
