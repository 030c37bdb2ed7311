"""LiteRT exports: Keras' exporter with built-in ops only, run by ``ai_edge_litert`` alone.

The models are tiny image classifiers (16x16 RGB pixels in, probabilities out) of
red, green and blue noise, so every export converts in about a second.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import COLOURS, run_process, truncate

from zoo.errors import ZooError
from zoo.results.exports.litert import open_litert, write_litert

SIZE = 16
CLASSES = ("red", "green", "blue")


def colour_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` uint8 images ``[SIZE, SIZE, 3]`` of noisy red, green or blue, and their
    class indices."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), count)
    means = np.array([COLOURS[name] for name in CLASSES], np.float32)[labels]
    pixels = rng.normal(means[:, None, None, :], 40, (count, SIZE, SIZE, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8), labels


def classifier(classes: int, extra: Any = None) -> Any:
    """Raw pixels in, a sigmoid (one class) or softmax out, preprocessing inside; with
    ``extra``, a layer between the convolutions and the head."""
    import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    pixels = keras.Input((SIZE, SIZE, 3))
    x = layers.Rescaling(1 / 255)(pixels)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)  # 2,304 weights: dynamic quantizes them
    x = layers.Flatten()(extra(x)) if extra is not None else layers.GlobalAveragePooling2D()(x)
    head = layers.Dense(classes, activation="sigmoid" if classes == 1 else "softmax")
    return keras.Model(pixels, head(x))


def trained(classes: int) -> Any:
    """A classifier trained to confident answers: "red or not" for one class, else which."""
    import keras

    model = classifier(classes)
    images, labels = colour_images(96, seed=0)
    targets = (labels == 0).astype("float32") if classes == 1 else labels
    loss = "binary_crossentropy" if classes == 1 else "sparse_categorical_crossentropy"
    model.compile(keras.optimizers.Adam(0.01), loss)
    model.fit(images.astype("float32"), targets, epochs=10, batch_size=16, verbose=0)
    return model


def keras_probabilities(model: Any, images: np.ndarray) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))


def in_batches(runner: Callable[[np.ndarray], np.ndarray], images: np.ndarray, size: int):
    return np.concatenate([runner(images[i : i + size]) for i in range(0, len(images), size)])


def top1(probabilities: np.ndarray) -> np.ndarray:
    if probabilities.shape[1] == 1:
        return (probabilities[:, 0] > 0.5).astype(int)
    return probabilities.argmax(axis=1)


def weight_dtypes(path: Path) -> set[str]:
    """The dtypes of the file's tensors shaped like the classifier's conv and dense kernels."""
    from ai_edge_litert.interpreter import Interpreter

    kernels = {(8, 3, 3, 3), (32, 3, 3, 8), (3, 32)}
    details = Interpreter(model_path=str(path)).get_tensor_details()
    return {np.dtype(t["dtype"]).name for t in details if tuple(t["shape"]) in kernels}


def calibration() -> Iterator[np.ndarray]:
    """What zoo gives int8 calibration: uint8 images, one at a time."""
    yield from colour_images(32, seed=1)[0]


@pytest.fixture(scope="module")
def models() -> dict[int, Any]:
    """Trained classifiers by number of outputs: 1 (sigmoid) and 3 (softmax)."""
    return {1: trained(1), 3: trained(3)}


@pytest.fixture(scope="module")
def float32_file(models: dict[int, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("litert") / "model.tflite"
    write_litert(models[3], path)
    return path


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return colour_images(20, seed=2)[0]


@pytest.mark.parametrize("classes", [1, 3])
def test_float32_gives_keras_probabilities(models, classes, images, tmp_path):
    path = tmp_path / "model.tflite"
    write_litert(models[classes], path)
    runner = open_litert(path)
    assert (runner.input_dtype, runner.image_size, runner.outputs) == ("float32", SIZE, classes)
    expected = keras_probabilities(models[classes], images)
    for batch in (1, 5):  # the runner resizes its input for each new batch size
        got = in_batches(runner, images, batch)
        assert got.dtype == np.float32 and got.shape == (20, classes)
        np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("quantize", ["float16", "dynamic"])
def test_float16_and_dynamic_are_smaller_and_close(
    models, quantize, float32_file, images, tmp_path
):
    path = tmp_path / "model.tflite"
    write_litert(models[3], path, quantize=quantize)
    assert path.stat().st_size < float32_file.stat().st_size
    assert {"float16": "float16", "dynamic": "int8"}[quantize] in weight_dtypes(path)
    runner = open_litert(path)
    assert runner.input_dtype == "float32"
    got = runner(images)
    np.testing.assert_allclose(got, keras_probabilities(models[3], images), atol=1e-2)


@pytest.mark.parametrize("io_dtype", ["float32", "uint8"])
def test_int8_agrees_with_keras(models, io_dtype, images, tmp_path):
    path = tmp_path / "model.tflite"
    write_litert(models[3], path, quantize="int8", calibration=calibration, io_dtype=io_dtype)
    assert weight_dtypes(path) == {"int8"}
    runner = open_litert(path)
    assert runner.input_dtype == io_dtype
    got = runner(images)
    assert got.dtype == np.float32 and got.shape == (20, 3)
    agreement = np.mean(top1(got) == top1(keras_probabilities(models[3], images)))
    assert agreement >= 0.9
    assert np.allclose(got.sum(axis=1), 1, atol=0.05)  # dequantized, not raw 0..255


def test_uint8_input_is_quantized_with_its_calibrated_scale(models, tmp_path):
    """Calibrated on dark images (0..127), the uint8 input steps by about 0.5: the runner
    quantizes pixels with that scale (and zero point) rather than passing them in as is."""
    dark = colour_images(20, seed=2)[0] // 2
    path = tmp_path / "model.tflite"
    write_litert(
        models[3],
        path,
        quantize="int8",
        calibration=lambda: iter(colour_images(32, seed=1)[0] // 2),
        io_dtype="uint8",
    )
    got = open_litert(path)(dark)
    assert np.abs(got - keras_probabilities(models[3], dark)).max() < 0.03


def test_int8_left_float_by_the_converter_is_refused(models, monkeypatch, tmp_path):
    """The converter sometimes writes float weights for int8 without a word
    (tensorflow/tensorflow#57619); here it is made to, and zoo notices."""
    from zoo.results.exports import litert

    options = litert._converter_options
    monkeypatch.setattr(litert, "_converter_options", lambda *args: options(None, None, "float32"))
    with pytest.raises(ZooError, match="not all int8") as caught:
        write_litert(models[3], tmp_path / "model.tflite", quantize="int8", calibration=calibration)
    assert "conv2d" in str(caught.value.got)
    assert not (tmp_path / "model.tflite").exists()


def histogram_classifier() -> Any:
    """A classifier with a layer that calls tf.math.bincount, a TensorFlow op LiteRT has
    no built-in kernel for: Keras' exporter alone writes it with a TensorFlow ("Flex")
    op, which the LiteRT runtime cannot run."""
    import keras
    import tensorflow as tf

    class Histogram(keras.layers.Layer):
        """How many activations fall in each of 8 levels."""

        def call(self, x: Any) -> Any:
            levels = tf.clip_by_value(tf.cast(x * 4, tf.int32), 0, 7)
            flat = tf.reshape(levels, (tf.shape(x)[0], -1))
            counts = tf.math.bincount(flat, minlength=8, maxlength=8, axis=-1)
            return tf.reshape(tf.cast(counts, x.dtype), (-1, 8))

    return classifier(3, extra=Histogram(name="histogram"))


def test_layer_without_builtin_op_fails_at_export_naming_it(capfd, tmp_path):
    with pytest.raises(ZooError) as caught:
        write_litert(histogram_classifier(), tmp_path / "model.tflite")
    error = caught.value
    assert error.got == "histogram (tf.DenseBincount)"
    assert "tf.DenseBincount in layer histogram" in error.what
    assert error.expected == "layers LiteRT runs with its built-in ops"
    assert "onnx" in error.fix
    assert capfd.readouterr() == ("", "")  # the converter's MLIR dump stays off the terminal
    assert not (tmp_path / "model.tflite").exists()


def test_file_with_tensorflow_ops_is_refused_at_open(tmp_path):
    """What Keras writes on its own opens in LiteRT and fails on the first image."""
    path = tmp_path / "model.tflite"
    histogram_classifier().export(str(path), format="litert", verbose=False)
    with pytest.raises(ZooError, match="Select TensorFlow op") as caught:
        open_litert(path)
    assert caught.value.expected == "a .tflite file zoo export wrote"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        pytest.param({"quantize": "int4"}, "float16, dynamic, int8", id="unknown quantization"),
        pytest.param({"quantize": "float16", "io_dtype": "uint8"}, "uint8", id="uint8 not int8"),
        pytest.param({"quantize": "int8"}, "calibration", id="int8 uncalibrated"),
    ],
)
def test_options_refused_before_converting(models, options, named, tmp_path):
    with pytest.raises(ZooError, match=named):
        write_litert(models[3], tmp_path / "model.tflite", **options)
    assert not (tmp_path / "model.tflite").exists()


@pytest.mark.parametrize("damage", ["truncated", "random bytes"])
def test_damaged_file_is_refused(damage, float32_file, tmp_path):
    path = tmp_path / "model.tflite"
    if damage == "truncated":
        path.write_bytes(float32_file.read_bytes())
        truncate(path)
    else:
        path.write_bytes(np.random.default_rng(0).bytes(float32_file.stat().st_size))
    with pytest.raises(ZooError, match="not a model the LiteRT runtime runs") as caught:
        open_litert(path)
    assert caught.value.got == str(path)
    assert "zoo export RUN --format litert" in caught.value.fix


def test_runs_where_tensorflow_cannot_be_imported(float32_file, images):
    """A deployer without TensorFlow runs the same code: importing it fails here."""
    script = """
import json, sys
sys.modules["tensorflow"] = None
from pathlib import Path

import numpy as np

from zoo.results.exports.litert import open_litert

runner = open_litert(Path(sys.argv[1]))
images = np.load(sys.argv[2])
print(json.dumps({"probabilities": runner(images).tolist(), "keras": "keras" in sys.modules}))
"""
    np.save(Path("images.npy"), images)
    result = run_process([sys.executable, "-c", script, str(float32_file), "images.npy"])
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["keras"] is False
    np.testing.assert_allclose(answer["probabilities"], open_litert(float32_file)(images))


def test_missing_runtime_names_the_extra(float32_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(ZooError, match=r"zoo\[litert\]"):
        open_litert(float32_file)
