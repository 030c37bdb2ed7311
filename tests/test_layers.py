"""Preprocessing as built-in Keras layers: the same numbers, no weights, no zoo to load.

That each mode computes ``keras.applications.*.preprocess_input`` is checked per Keras
Applications backbone in ``tests/test_backbones.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoo.components import PREPROCESSING_MODES

PIXELS = np.random.default_rng(0).uniform(0, 255, (2, 5, 7, 3)).astype("float32")

#: Loads the model in plain Keras and prints each mode's output.
PLAIN = """
import json, sys
import keras, numpy as np
model = keras.models.load_model(sys.argv[1])
outputs = model.predict_on_batch(np.load(sys.argv[2]))
print(json.dumps({"zoo": "zoo" in sys.modules, "outputs": [o.tolist() for o in outputs]}))
"""


def every_mode():
    import keras

    from zoo.model.layers import preprocessing_layer

    pixels = keras.Input((5, 7, 3))
    layers = [preprocessing_layer(mode) for mode in PREPROCESSING_MODES]
    return keras.Model(pixels, [layer(pixels) for layer in layers]), layers


def test_every_mode_is_built_from_keras_layers_without_weights():
    model, layers = every_mode()

    assert model.count_params() == 0
    assert {layer.name: type(layer).__name__ for layer in layers} == {
        "preprocess_caffe": "Functional",
        "preprocess_tf": "Rescaling",
        "preprocess_torch": "Rescaling",
        "preprocess_unit": "Rescaling",
        "preprocess_none": "Identity",
    }
    assert all(type(layer).__module__.startswith("keras.") for layer in layers)


def test_a_saved_model_with_every_mode_loads_in_plain_keras(isolated: Path):
    model, _ = every_mode()
    model.save(isolated / "modes.keras")
    np.save(isolated / "pixels.npy", PIXELS)

    proc = subprocess.run(
        [sys.executable, "-c", PLAIN, str(isolated / "modes.keras"), str(isolated / "pixels.npy")],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout)
    assert loaded["zoo"] is False
    for got, expected in zip(loaded["outputs"], model.predict_on_batch(PIXELS), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_caffe_is_built_the_same_every_time_so_cached_features_are_found():
    """The feature cache keys on the layer's config; Keras numbers unnamed ops per process."""
    from zoo.model.layers import preprocessing_layer

    first, second = (preprocessing_layer("caffe", image_shape=(32, 32, 3)) for _ in range(2))

    assert first.get_config() == second.get_config()


@pytest.mark.parametrize("mode", PREPROCESSING_MODES)
def test_older_preprocess_layers_load_as_the_built_in_layers(mode: str):
    """Older zoo saved zoo>Preprocess; it comes back as today's layers, same numbers."""
    import keras

    import zoo.model.layers

    saved = {
        "module": "zoo.model.layers",
        "class_name": "Preprocess",
        "config": {
            "name": f"preprocess_{mode}",
            "trainable": True,
            "dtype": "float32",
            "mode": mode,
        },
        "registered_name": "zoo>Preprocess",
    }

    layer = keras.saving.deserialize_keras_object(saved)

    today = zoo.model.layers.preprocessing_layer(mode)
    assert (type(layer), layer.name) == (type(today), f"preprocess_{mode}")
    np.testing.assert_allclose(layer(PIXELS), today(PIXELS), rtol=1e-6)


def test_unit_computes_in_a_graph_the_bits_older_zoo_trained_with():
    """Older zoo divided by 255; Rescaling multiplies by 1/255. In a tf.function, where
    zoo trains and predicts, both give the same bits, so the shipped shapes_cnn weights
    still reproduce (tools/pretrain_demo_backbone.py). Eagerly they differ in the last
    bit, and so does Normalization's division by a captured 255 in a graph."""
    import tensorflow as tf

    from zoo.model.layers import preprocessing_layer

    layer = preprocessing_layer("unit")

    then = tf.function(lambda pixels: pixels / 255.0)(PIXELS)
    now = tf.function(lambda pixels: layer(pixels))(PIXELS)

    np.testing.assert_array_equal(now, then)
