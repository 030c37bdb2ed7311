"""Keras layers zoo puts into models. Importing this module imports Keras."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from zoo.components import PREPROCESSING_MODES

# The constants of keras.applications.imagenet_utils.preprocess_input, per mode.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="zoo")
class Preprocess(keras.layers.Layer):
    """Raw RGB pixels (0..255) to a backbone's expected input, inside the model.

    Modes match ``keras.applications.*.preprocess_input``:

    - ``caffe``: RGB to BGR, minus the ImageNet mean per channel (ResNet, VGG).
    - ``tf``: scaled to -1..1 (MobileNet, Inception, Xception).
    - ``torch``: scaled to 0..1, then normalised per channel (DenseNet).
    - ``unit``: scaled to 0..1 (models trained from scratch).
    - ``none``: unchanged (models that preprocess inside, such as EfficientNet).
    """

    def __init__(self, mode: str = "none", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(
                f"unknown preprocessing mode {mode!r}; expected one of {PREPROCESSING_MODES}"
            )
        self.mode = mode

    def call(self, images: Any) -> Any:
        images = ops.cast(images, self.compute_dtype)
        if self.mode == "caffe":
            return ops.flip(images, axis=-1) - ops.convert_to_tensor(
                _CAFFE_MEAN_BGR, dtype=self.compute_dtype
            )
        if self.mode == "tf":
            return images / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, dtype=self.compute_dtype)
            return (images / 255.0 - mean) / std
        if self.mode == "unit":
            return images / 255.0
        return images

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


def as_layer(preprocessing: keras.layers.Layer | str) -> keras.layers.Layer:
    """A backbone's preprocessing as a layer: a mode name becomes ``Preprocess``."""
    if isinstance(preprocessing, str):
        return Preprocess(preprocessing, name=f"preprocess_{preprocessing}")
    if isinstance(preprocessing, keras.layers.Layer):
        return preprocessing
    raise TypeError(
        f"preprocessing must be a Keras layer or one of {PREPROCESSING_MODES}, "
        f"not {preprocessing!r}"
    )
