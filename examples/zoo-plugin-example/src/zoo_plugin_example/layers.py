"""The Keras layer the ``attention_pool`` head uses. Importing this module imports Keras.

Only builders import it, so ``zoo list`` never does. The layer is registered as
serialisable under the package ``zoo_plugin_example``: a saved ``model.keras`` that
uses it loads wherever this package is installed and imported.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo_plugin_example")
class AttentionPooling(keras.layers.Layer):
    """A weighted average of a feature map's positions, the weights learned.

    Each position of ``[batch, h, w, c]`` gets a score (a learned linear function of
    its features); a softmax over the ``h * w`` scores gives the weights. Output
    ``[batch, c]``. Where global average pooling weighs every position equally, this
    lets the head look where the evidence is.
    """

    def build(self, input_shape: Any) -> None:
        channels = input_shape[-1]
        self.score = self.add_weight(shape=(channels, 1), initializer="zeros", name="score")
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")

    def call(self, features: Any) -> Any:
        channels = ops.shape(features)[-1]
        positions = ops.reshape(features, (ops.shape(features)[0], -1, channels))
        weights = ops.softmax(ops.matmul(positions, self.score) + self.bias, axis=1)
        return ops.sum(positions * weights, axis=1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], input_shape[-1])
