"""KerasHub presets as backbones: ResNet, EfficientNet, MobileNet, ViT, DeiT, DINOv2, CLIP, SigLIP.

``keras_hub`` takes any KerasHub image preset, ``--set backbone.preset=NAME|DIR``: a
preset name (``keras_hub.models.Backbone.presets``), a ``kaggle://`` or ``hf://``
handle, or a local preset directory (``config.json``, ``model.weights.h5`` and
``image_converter.json``, as ``save_to_preset`` writes them). The curated names of
:data:`CURATED` are the same backbone with a preset chosen, one row each.

The backbone is the preset's image model (the image encoder of CLIP and SigLIP), frozen
by default. Its preprocessing is the preset's image converter, rebuilt from plain Keras
layers inside the model (so a saved model needs no zoo class): ``Rescaling`` by the
converter's scale and offset, preceded by ``Resizing`` to the preset's size when the
model has a fixed input size (the transformers) that ``--image-size`` does not match.
Convolutional presets take any size, as Keras Applications do.

Presets come from the KerasHub cache, downloaded when missing, and are declared for
``zoo fetch``; zoo checks cached files before KerasHub reads them (``keras_hub_files``).

Token sequences: ViT, DeiT, DINOv2 and CLIP give ``[batch, tokens, c]`` with a class
token first, which they declare (``token_pooling="class_token"``) for heads set to
``auto``; SigLIP's encoder pools itself and gives a vector.

This plugin needs the package keras-hub (``pip install 'zoo[hub]'``); without it,
zoo lists it as unavailable with that command, and nothing else changes.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from typing import Any

import zoo

from .keras_hub_files import (
    PRESET_FILES,
    Where,
    cached,
    check,
    downloads,
    fetch,
    fetch_converter,
    locate,
    weights_file,
)
from .keras_hub_presets import CURATED

INSTALL = "pip install 'zoo[hub]'"
#: Families whose token sequence starts with a class token trained to sum up the image.
_CLASS_TOKEN_MODELS = (
    "ViTBackbone",
    "DeiTBackbone",
    "DINOV2Backbone",
    "DINOV3Backbone",
    "CLIPVisionEncoder",
)
#: The smallest --image-size: the convolutional presets downsample by 32 (a 1x1 map at
#: 32x32); the transformers are resized to their own size inside the model anyway.
MIN_IMAGE_SIZE = 32


def build(image_shape: tuple[int, int, int], params: Mapping[str, Any]) -> zoo.BuiltBackbone:
    """The preset's image model, frozen unless ``trainable``, with its preprocessing."""
    import keras_hub as hub

    where = locate(params["preset"])
    files = cached(where)
    damaged = check(files, where)
    encoder = _image_model(fetch(where, hub.models.Backbone, damaged), where)
    converter = fetch_converter(where, hub.layers.ImageConverter, damaged)
    check(files, where)  # records what KerasHub just downloaded, so later damage shows
    if converter is None:  # a timm preset without its preprocessing configuration
        raise zoo.ZooError(
            f"the KerasHub preset '{where.value}' has no image converter, so zoo cannot "
            "know how its images were preprocessed.",
            expected=f"a preset with {PRESET_FILES}",
            fix="save the ImageConverter the model was trained with into the preset "
            "(converter.save_to_preset(DIR)) and pass --set backbone.preset=DIR",
            got=where.value,
        )
    model = _on_image_tensors(encoder)
    model.trainable = params["trainable"]
    return zoo.BuiltBackbone(
        model=model,
        preprocessing=_preprocessing(converter, model, image_shape),
        weights_file=weights_file(where),
        token_pooling=_token_pooling(encoder),
        pretrained=True,  # a preset always brings its trained weights
    )


def _image_model(backbone: Any, where: Where) -> Any:
    """The model that takes images: the backbone, or a two-encoder model's image encoder."""
    model = backbone if _takes_images(backbone) else getattr(backbone, "vision_encoder", None)
    if model is None or not _takes_images(model) or len(model.outputs) != 1:
        raise zoo.ZooError(
            f"the KerasHub preset '{where.value}' is a {type(backbone).__name__}, which "
            "has no image model with one output.",
            expected="an image backbone (ResNet, EfficientNet, ViT, DINOv2, ...) or a "
            "model with a vision_encoder (CLIP, SigLIP)",
            fix="pick an image preset; `zoo list backbones` shows the curated ones (hub_*)",
            got=where.value,
        )
    return model


def _on_image_tensors(encoder: Any) -> Any:
    """``encoder`` as a model of an image tensor; KerasHub's CLIP and DINOv2 take a dict."""
    import keras

    if not isinstance(encoder.input, dict):
        return encoder
    (name,) = encoder.input
    images = keras.Input(encoder.input[name].shape[1:], name=name)
    return keras.Model(images, encoder({name: images}), name=f"{encoder.name}_on_images")


def _takes_images(model: Any) -> bool:
    inputs = getattr(model, "inputs", None) or []
    return len(inputs) == 1 and len(inputs[0].shape) == 4 and inputs[0].shape[-1] == 3


def _preprocessing(converter: Any, model: Any, image_shape: tuple[int, ...]) -> Any:
    """The converter's resize (for fixed-size models), scale and offset, as Keras layers."""
    import keras

    # A named input: an automatic name would change from one build to the next, and the
    # layer's configuration is part of the feature cache's key.
    layers = [keras.Input(image_shape, name="raw_pixels")]
    size = tuple(model.inputs[0].shape[1:3])
    if None not in size and size != tuple(image_shape[:2]):
        layers.append(
            keras.layers.Resizing(
                *size,
                interpolation=converter.interpolation,
                antialias=converter.antialias,
                name="resize_to_preset",
            )
        )
    scale = 1.0 if converter.scale is None else converter.scale
    offset = 0.0 if converter.offset is None else converter.offset
    layers.append(keras.layers.Rescaling(scale, offset, name="scale_to_preset"))
    return keras.Sequential(layers, name="keras_hub_preprocessing")


def _token_pooling(model: Any) -> str | None:
    if len(model.outputs[0].shape) != 3:
        return None
    has_class_token = type(model).__name__ in _CLASS_TOKEN_MODELS and getattr(
        model, "use_class_token", True
    )
    return "class_token" if has_class_token else "mean"


def installed() -> bool:
    """Whether keras_hub can be imported, found without importing it (nor TensorFlow)."""
    try:
        return importlib.util.find_spec("keras_hub") is not None
    except (ImportError, ValueError):  # ValueError: blocked, sys.modules["keras_hub"] = None
        return False


def _params(preset: str | None) -> tuple[zoo.Param, ...]:
    where = (
        "a KerasHub preset name, a kaggle:// or hf:// handle, or a local preset directory "
        "(from the KerasHub cache, $KAGGLEHUB_CACHE or ~/.cache/kagglehub; downloaded if "
        "missing)"
    )
    return (
        zoo.Param("preset", str, preset, where, required=preset is None),
        zoo.Param("trainable", bool, False, "train the backbone too (default: frozen)"),
    )


@zoo.hookimpl
def register_backbones(register: Callable[[zoo.Backbone], None]) -> None:
    register(
        zoo.Backbone(
            name="keras_hub",
            description="Any KerasHub image preset: --set backbone.preset=NAME|DIR",
            params=_params(None),
            build=build,
            downloads=downloads,
            min_image_size=MIN_IMAGE_SIZE,
            source="KerasHub, any image preset",
        )
    )
    for row in CURATED:
        register(
            zoo.Backbone(
                name=row.name,
                description=row.description,
                params=_params(row.preset),
                build=build,
                downloads=downloads,
                min_image_size=MIN_IMAGE_SIZE,
                family=row.family,
                parameters=row.parameters,
                native_image_size=row.image_size,
                source=f"KerasHub preset {row.preset}",
            )
        )
    if not installed():
        raise zoo.PluginUnavailable("needs the package keras-hub", install=INSTALL)
