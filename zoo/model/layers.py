"""The preprocessing zoo puts into models, as built-in Keras layers. Imports Keras.

A backbone names its preprocessing mode (``"caffe"``, ``"tf"``, ``"torch"``, ``"unit"``,
``"none"``) and :func:`preprocessing_layer` turns it into layers Keras ships, so a
saved model loads in plain Keras, without zoo: ``Rescaling`` (one scale and offset per
channel) for ``tf``, ``torch`` and ``unit``; ``Identity`` for ``none``; and for
``caffe``, whose RGB to BGR flip no Keras layer expresses, a small functional model of
``keras.ops.flip`` and ``Rescaling`` (operations in a functional model are saved by
Keras like layers). None of them has weights, so parameter counts are unchanged.

Models saved by older zoo (without ``zoo.json``) hold zoo's own ``Preprocess`` layer
(``zoo>Preprocess``);
importing this module registers a loader that reads it back as these built-in layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zoo.components import PREPROCESSING_MODES
from zoo.runtime.loader import keras

# The constants of keras.applications.imagenet_utils.preprocess_input, per mode.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

#: ``x * scale + offset`` per channel, for the modes ``Rescaling`` expresses alone.
#: torch: ``(x / 255 - mean) / std`` is ``x / (255 std) - mean / std``.
_AFFINE: dict[str, tuple[float | Sequence[float], float | Sequence[float]]] = {
    "tf": (1 / 127.5, -1.0),
    "unit": (1 / 255, 0.0),
    "torch": (
        [1 / (255 * s) for s in _TORCH_STD],
        [-m / s for m, s in zip(_TORCH_MEAN, _TORCH_STD, strict=True)],
    ),
}


def preprocessing_layer(
    mode: str,
    name: str | None = None,
    dtype: Any = None,
    image_shape: Sequence[int] | None = None,
) -> keras.Layer:
    """Raw RGB pixels (0..255) to a backbone's input, as ``preprocess_input`` of ``mode``.

    Modes match ``keras.applications.*.preprocess_input``:

    - ``caffe``: RGB to BGR, minus the ImageNet mean per channel (ResNet, VGG).
    - ``tf``: scaled to -1..1 (MobileNet, Inception, Xception).
    - ``torch``: scaled to 0..1, then normalised per channel (DenseNet).
    - ``unit``: scaled to 0..1 (models trained from scratch).
    - ``none``: unchanged (models that preprocess inside, such as EfficientNet).

    Args:
        name: The layer's name; ``preprocess_<mode>`` by default.
        dtype: Its dtype policy; by default the global one.
        image_shape: ``(height, width, 3)``, when known: ``caffe``'s small model then
            shows the image's shape in summaries instead of ``(None, None, 3)``.

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in PREPROCESSING_MODES:
        raise ValueError(
            f"unknown preprocessing mode {mode!r}; expected one of {PREPROCESSING_MODES}"
        )
    name = name or f"preprocess_{mode}"
    if mode == "none":
        return keras.layers.Identity(name=name, dtype=dtype)
    if mode == "caffe":
        return _caffe(name, dtype, tuple(image_shape or (None, None, 3)))
    scale, offset = _AFFINE[mode]
    return keras.layers.Rescaling(scale, offset, name=name, dtype=dtype)


def _caffe(name: str, dtype: Any, image_shape: tuple[int | None, ...]) -> keras.Model:
    # Keras's public ops name themselves ("flip", "flip_1", ...) per process, and the
    # feature cache keys on this layer's config: the operation class, named, keeps the
    # config the same in every build.
    from keras.src.ops.numpy import Flip

    pixels = keras.Input(image_shape, name="rgb")
    bgr = Flip(axis=-1, name="rgb_to_bgr")(pixels)
    minus_mean = keras.layers.Rescaling(
        1.0, [-m for m in _CAFFE_MEAN_BGR], name="minus_mean", dtype=dtype
    )
    return keras.Model(pixels, minus_mean(bgr), name=name)


def as_layer(
    preprocessing: keras.Layer | str, image_shape: Sequence[int] | None = None
) -> keras.Layer:
    """A backbone's preprocessing as a layer: a mode name becomes built-in layers."""
    if isinstance(preprocessing, str):
        return preprocessing_layer(preprocessing, image_shape=image_shape)
    if isinstance(preprocessing, keras.Layer):
        return preprocessing
    raise TypeError(
        f"preprocessing must be a Keras layer or one of {PREPROCESSING_MODES}, "
        f"not {preprocessing!r}"
    )


@keras.saving.register_keras_serializable(package="zoo", name="Preprocess")
class _Zoo010Preprocess(keras.Layer):
    """Reads the ``zoo>Preprocess`` layer of older models as built-in layers.

    Keras finds this class by its registered name and calls :meth:`from_config`, which
    returns :func:`preprocessing_layer` of the saved mode, name and dtype policy: the
    same computation, which a model saved again keeps without zoo.
    """

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> keras.Layer:
        dtype = config.get("dtype")
        if isinstance(dtype, dict):
            dtype = keras.dtype_policies.deserialize(dtype)
        return preprocessing_layer(config["mode"], name=config["name"], dtype=dtype)
