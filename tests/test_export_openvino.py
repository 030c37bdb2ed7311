"""OpenVINO exports: written from Keras (float32, float16, int8), read without TensorFlow.

OpenVINO is the ``[openvino]`` extra, and int8 needs its NNCF too; the tests that run
them are skipped without them. The models are tiny image classifiers of a colour task
("which channel is brightest"), so the file runs in seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import truncate

import zoo
from zoo.results.exports.openvino import (
    QUANTIZATIONS,
    SUFFIX,
    open_openvino,
    read_metadata,
    write_openvino,
)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None,
    reason="needs OpenVINO: pip install 'zoo[openvino]'",
)
needs_nncf = pytest.mark.skipif(
    importlib.util.find_spec("nncf") is None,
    reason="int8 needs NNCF: pip install 'zoo[openvino-int8]'",
)

SIZE = 16
METADATA = {
    "class_names": json.dumps(["red", "green", 'blü <&> "quoted"']),
    "image_size": str(SIZE),
    "note": "two\nlines\tand a tab",
}


def colour_images(count: int, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Noisy uint8 images ``[count, size, size, 3]`` labelled by their brightest channel."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    pixels = np.full((count, size, size, 3), 60.0)
    pixels[np.arange(count), :, :, labels] = 190.0
    noisy = np.clip(pixels + rng.normal(0, 40, pixels.shape), 0, 255)
    return noisy.astype(np.uint8), labels


def classifier(units: int, any_size: bool = False, seed: int = 0):
    """A tiny functional Keras classifier of raw pixels 0..255, as zoo builds them."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    if any_size:
        images = keras.Input((None, None, 3))
        x = layers.Resizing(SIZE, SIZE)(images)
    else:
        images = x = keras.Input((SIZE, SIZE, 3))
    x = layers.Rescaling(1 / 255)(x)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    activation = "sigmoid" if units == 1 else "softmax"
    return keras.Model(images, layers.Dense(units, activation=activation)(x))


def calibration() -> np.ndarray:
    """Images for int8 calibration, apart from those the tests compare on."""
    return colour_images(32, seed=1)[0]


def keras_probabilities(model, images: np.ndarray) -> np.ndarray:
    return model.predict(images.astype("float32"), verbose=0)


@pytest.fixture(scope="module")
def trained():
    """The three-class classifier trained on the colour task until it is sure."""
    import keras

    model = classifier(3)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    images, labels = colour_images(256, seed=0)
    model.fit(images.astype("float32"), labels, epochs=5, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def exports(trained, tmp_path_factory) -> dict[str | None, Path]:
    """The trained model written once per quantization (``None``: float32 weights)."""
    folder = tmp_path_factory.mktemp("openvino")
    written: dict[str | None, Path] = {}
    for quantize in (None, *QUANTIZATIONS):
        if quantize == "int8" and importlib.util.find_spec("nncf") is None:
            continue
        path = folder / f"{quantize or 'float32'}{SUFFIX}"
        write_openvino(trained, path, quantize=quantize, calibration=calibration, metadata=METADATA)
        written[quantize] = path
    return written


# float32 ------------------------------------------------------------------------------


@pytest.mark.parametrize("units", [1, 3], ids=["sigmoid", "softmax"])
def test_a_float32_export_gives_keras_probabilities_within_1e_4(tmp_path, units):
    model = classifier(units)
    write_openvino(model, tmp_path / "model.xml")
    runner = open_openvino(tmp_path / "model.xml")

    images, _ = colour_images(20, seed=3)
    probabilities = runner(images)  # uint8 pixels, as a deployer has them

    assert (runner.input_dtype, runner.image_size, runner.outputs) == ("float32", SIZE, units)
    assert (tmp_path / "model.bin").stat().st_size > 3 * model.count_params()  # 4 B a weight
    assert probabilities.dtype == np.float32 and probabilities.shape == (20, units)
    np.testing.assert_allclose(probabilities, keras_probabilities(model, images), atol=1e-4)


def test_a_runner_computes_in_float32_where_the_cpu_would_pick_bfloat16(tmp_path, monkeypatch):
    """OpenVINO's CPU plugin computes in bfloat16 by default where the CPU has it."""
    from zoo.runtime import conversion

    configs = []
    core = conversion.core()

    class RecordingCore:
        def compile_model(self, model, device, config):
            configs.append(config)
            return core.compile_model(model, device, config)

    write_openvino(classifier(1), tmp_path / "model.xml")
    monkeypatch.setattr(conversion, "core", RecordingCore)
    open_openvino(tmp_path / "model.xml")

    assert configs == [{"INFERENCE_PRECISION_HINT": "f32"}]


def test_an_any_size_export_takes_any_size_and_resizes_as_keras_does(tmp_path):
    model = classifier(3, any_size=True)
    write_openvino(model, tmp_path / "model.xml")
    runner = open_openvino(tmp_path / "model.xml")

    assert runner.image_size is None
    for size in (SIZE, 23, 40):
        images, _ = colour_images(20, seed=size, size=size)
        expected = keras_probabilities(model, images)
        np.testing.assert_allclose(runner(images), expected, atol=1e-4)


# float16 and int8 ---------------------------------------------------------------------


def test_a_float16_export_halves_the_weights_and_stays_within_1e_2(trained, exports):
    float32, float16 = exports[None].with_suffix(".bin"), exports["float16"].with_suffix(".bin")
    images, _ = colour_images(20, seed=3)

    probabilities = open_openvino(exports["float16"])(images)

    assert float16.stat().st_size < 0.6 * float32.stat().st_size
    np.testing.assert_allclose(probabilities, keras_probabilities(trained, images), atol=1e-2)


@needs_nncf
def test_an_int8_export_is_quantized_and_agrees_with_keras_on_top_1(trained, exports):
    from zoo.runtime import conversion

    images, labels = colour_images(100, seed=2)
    expected = keras_probabilities(trained, images)
    assert (expected.argmax(1) == labels).mean() >= 0.9, "the model must have learnt the task"
    assert expected.max(1).mean() > 0.8, "its outputs must be sure, not near 1/3"

    probabilities = open_openvino(exports["int8"])(images)

    assert (probabilities.argmax(1) == expected.argmax(1)).mean() >= 0.9
    ops = conversion.core().read_model(exports["int8"]).get_ops()
    assert "FakeQuantize" in {op.get_type_name() for op in ops}
    constants = [op for op in ops if op.get_type_name() == "Constant"]
    assert "i8" in {op.get_output_element_type(0).get_type_name() for op in constants}
    assert exports["int8"].with_suffix(".bin").stat().st_size < (
        exports["float16"].with_suffix(".bin").stat().st_size
    )


#: A tiny int8 export, run as ``python -c``: NNCF turns its telemetry off by itself when
#: pytest is imported, so only a process of its own shows what a user's would do.
INT8_EXPORT = """
import sys
from pathlib import Path
import numpy as np
import keras
from zoo.results.exports.openvino import write_openvino

images = keras.Input((8, 8, 3))
x = keras.layers.Conv2D(4, 3)(keras.layers.Rescaling(1 / 255)(images))
x = keras.layers.GlobalAveragePooling2D()(x)
model = keras.Model(images, keras.layers.Dense(2, activation="softmax")(x))
calibration = lambda: np.zeros((4, 8, 8, 3), np.uint8)
write_openvino(model, Path("m.xml"), quantize="int8", calibration=calibration)
print("openvino_telemetry" in sys.modules, "nncf" in sys.modules, file=sys.stderr)
"""

#: What a user's code may do first: load NNCF, and OpenVINO's telemetry with it (its
#: sending recorded instead of done).
NNCF_FIRST = """
import openvino_telemetry
sent = []
def record(self, *args, **kwargs):
    sent.append(args)
openvino_telemetry.Telemetry.send_event = record
openvino_telemetry.Telemetry.start_session = record
import nncf
sent.clear()  # what loading them sent (OpenVINO's converter reports its import)
"""


def int8_in_a_process_of_its_own(home: Path, before: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home), "NNCF_CI": "", "NNCF_DEV": ""}
    done = subprocess.run(
        [sys.executable, "-c", before + INT8_EXPORT + "\nprint(len(globals().get('sent', [])))"],
        cwd=home, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


@needs_nncf
def test_int8_quantization_loads_no_telemetry_and_keeps_stdout_for_data(tmp_path):
    """NNCF reports each quantization unless told not to, and draws progress bars on stdout."""
    done = int8_in_a_process_of_its_own(tmp_path)

    assert done.stderr.splitlines()[-1] == "False True"  # NNCF ran, its telemetry never loaded
    assert not (tmp_path / "intel").exists()  # where OpenVINO's telemetry keeps a client ID
    assert done.stdout == "0\n"  # the script's own line only


@needs_nncf
def test_int8_quantization_reports_nothing_when_nncf_came_with_its_telemetry(tmp_path):
    done = int8_in_a_process_of_its_own(tmp_path, before=NNCF_FIRST)

    assert done.stderr.splitlines()[-1] == "True True"
    assert done.stdout == "0\n"  # events sent while zoo quantized


def test_int8_without_nncf_names_the_extra_that_installs_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nncf", None)  # what an import sees when it is missing

    with pytest.raises(zoo.ZooError, match=r"zoo\[openvino-int8\]"):
        write_openvino(classifier(3), tmp_path / "m.xml", quantize="int8", calibration=list)


@needs_nncf
def test_int8_needs_calibration_images(tmp_path):
    with pytest.raises(zoo.ZooError, match="needs calibration images, and none were given"):
        write_openvino(classifier(3), tmp_path / "m.xml", quantize="int8")
    with pytest.raises(zoo.ZooError, match="calibration set is empty"):
        write_openvino(classifier(3), tmp_path / "m.xml", quantize="int8", calibration=list)
    assert not (tmp_path / "m.xml").exists()


def test_an_unknown_quantization_lists_the_known_ones(tmp_path):
    with pytest.raises(zoo.ZooError) as raised:
        write_openvino(classifier(3), tmp_path / "m.xml", quantize="int4")

    assert "did you mean 'int8'" in raised.value.what
    assert "'float16' or 'int8'" in str(raised.value.expected)
    assert not (tmp_path / "m.xml").exists()


# Metadata -----------------------------------------------------------------------------


def test_metadata_and_probabilities_come_back_in_a_process_without_tensorflow(trained, exports):
    script = """
        import json, sys
        sys.modules["tensorflow"] = None  # importing it (or Keras) now fails
        from pathlib import Path
        import numpy as np
        from zoo.results.exports.openvino import open_openvino, read_metadata

        path = Path(sys.argv[1])
        runner = open_openvino(path)
        images = np.load(sys.argv[2])
        print(json.dumps({
            "metadata": read_metadata(path),
            "outputs": runner.outputs,
            "probabilities": runner(images).tolist(),
            "keras": "keras" in sys.modules,
        }))
    """
    images, _ = colour_images(5, seed=4)
    np.save(exports[None].parent / "images.npy", images)
    command = [sys.executable, "-c", textwrap.dedent(script), str(exports[None])]
    done = subprocess.run(
        [*command, str(exports[None].parent / "images.npy")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["metadata"] == METADATA
    assert json.loads(answer["metadata"]["class_names"])[2] == 'blü <&> "quoted"'
    assert (answer["outputs"], answer["keras"]) == (3, False)
    expected = keras_probabilities(trained, images)
    np.testing.assert_allclose(answer["probabilities"], expected, atol=1e-4)


def test_every_quantization_keeps_the_metadata(exports):
    for path in exports.values():
        assert read_metadata(path) == METADATA


def test_an_export_without_metadata_has_none(tmp_path):
    write_openvino(classifier(1), tmp_path / "model.xml")

    assert read_metadata(tmp_path / "model.xml") == {}


# Damaged and hostile files ------------------------------------------------------------


def without_weights(xml: Path) -> None:
    xml.with_suffix(".bin").unlink()


def garbage(xml: Path) -> None:
    xml.write_bytes(os.urandom(3000))


def half_the_weights(xml: Path) -> None:
    truncate(xml.with_suffix(".bin"))


def a_folder(xml: Path) -> None:
    xml.unlink()
    (xml / "saved_model.pb").mkdir(parents=True)  # what the TensorFlow reader looks for


def another_xml(xml: Path) -> None:
    xml.write_text("<html><body>not a network</body></html>")


def a_different_model(xml: Path) -> None:
    """A valid IR, but of no image classifier: one input of two numbers."""
    from zoo.runtime import conversion

    ov = conversion.openvino()
    numbers = ov.opset13.parameter([-1, 2], np.float32)
    ov.save_model(ov.Model([ov.opset13.relu(numbers)], [numbers]), str(xml))


DAMAGE = [without_weights, truncate, garbage, half_the_weights, a_folder, another_xml]


@pytest.mark.parametrize("damage", [*DAMAGE, a_different_model], ids=lambda d: d.__name__)
def test_a_damaged_export_is_a_zoo_error_naming_what_was_expected(tmp_path, exports, damage):
    xml = tmp_path / "model.xml"
    xml.write_bytes(exports[None].read_bytes())
    xml.with_suffix(".bin").write_bytes(exports[None].with_suffix(".bin").read_bytes())
    damage(xml)

    for read in (open_openvino, read_metadata):
        with pytest.raises(zoo.ZooError) as raised:
            read(xml)
        assert raised.value.expected == (
            "an OpenVINO model zoo export wrote: NAME.xml with its NAME.bin beside it"
        )
        assert raised.value.fix == "export it again: zoo export RUN --format openvino"
        assert raised.value.got == str(xml)


def test_a_missing_export_is_a_zoo_error(tmp_path):
    with pytest.raises(zoo.ZooError, match="does not exist"):
        open_openvino(tmp_path / "nothing.xml")


def test_xml_entities_are_never_expanded(tmp_path, exports):
    """Neither a file's contents (an external entity) nor a billion laughs."""
    (tmp_path / "secret.txt").write_text("the secret")
    laughs = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    doctype = (
        f"<!DOCTYPE net [{''.join(laughs)}"
        f'<!ENTITY secret SYSTEM "file://{tmp_path / "secret.txt"}">]>'
    )
    text = exports[None].read_text(encoding="utf-8").split("\n", 1)[1]  # after <?xml ...?>
    text = text.replace('<image_size value="16" />', '<image_size value="&lol9;&secret;" />')
    xml = tmp_path / "hostile.xml"
    xml.write_text(f'<?xml version="1.0"?>\n{doctype}\n{text}', encoding="utf-8")
    xml.with_suffix(".bin").write_bytes(exports[None].with_suffix(".bin").read_bytes())

    assert read_metadata(xml)["image_size"] == "&lol9;&secret;"


#: A TensorFlow graph in protobuf's text format: an image classifier ``[?, 4, 4, 3]`` to
#: ``[?, 3]`` that OpenVINO's TensorFlow reader reads, whatever the file's name.
TENSORFLOW_GRAPH = """
node { name: "images" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "shape" value { shape { dim { size: -1 } dim { size: 4 } dim { size: 4 }
  dim { size: 3 } } } } }
node { name: "axes" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
  attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { dim { size: 2 } }
  int_val: 1 int_val: 2 } } } }
node { name: "mean" op: "Mean" input: "images" input: "axes"
  attr { key: "T" value { type: DT_FLOAT } } attr { key: "Tidx" value { type: DT_INT32 } } }
node { name: "scores" op: "Softmax" input: "mean" attr { key: "T" value { type: DT_FLOAT } } }
"""


def test_an_xml_is_read_as_openvinos_own_format_only(tmp_path):
    """OpenVINO's ``Core.read_model`` tries its other readers on a file its IR reader
    refuses; zoo reads an export with the IR reader alone."""
    from zoo.runtime import conversion

    xml = tmp_path / "model.xml"
    xml.write_text(TENSORFLOW_GRAPH)
    xml.with_suffix(".bin").write_bytes(b"")
    assert len(conversion.core().read_model(xml).outputs) == 1  # what zoo does not do

    with pytest.raises(zoo.ZooError, match="cannot be read"):
        open_openvino(xml)
