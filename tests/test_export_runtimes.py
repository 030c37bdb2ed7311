"""``zoo export --format litert|onnx|openvino``: a folder checked by the file's own runtime,
and ``zoo predict`` on what was exported.

The writers and runners of each format are tested in tests/test_export_litert.py and
tests/test_export_openvino.py; here is what users run: the command, its folder, and
``zoo predict`` on the folder in a new process.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_zoo, write
from PIL import Image
from test_predict import shape_image, train_tiny


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny(
        tmp_path_factory.mktemp("runs"),
        ["shapes", "small_cnn", "gap_softmax"],
        sets=["dataset.classes=circle,square,triangle"],
    )


@pytest.fixture(scope="module")
def onnx_export(run_dir: Path, tmp_path_factory) -> Path:
    """An ONNX export, written by ``zoo export`` in its own process."""
    folder = tmp_path_factory.mktemp("exports") / "onnx"
    result = run_zoo("export", str(run_dir), "--format", "onnx", "--output", str(folder))
    assert result.exit_code == 0, result.stderr
    return folder


@pytest.fixture
def photos(isolated: Path) -> list[str]:
    names = []
    for index, shape in enumerate(("circle", "square", "triangle")):
        Image.fromarray(shape_image(shape, seed=index)).save(isolated / f"{shape}.png")
        names.append(str(isolated / f"{shape}.png"))
    return names


def test_an_onnx_export_is_a_folder_with_its_classes_spec_and_check(onnx_export: Path):
    assert sorted(p.name for p in onnx_export.iterdir()) == [
        "export.json",
        "labels.txt",
        "model.onnx",
        "signature.json",
    ]
    assert (onnx_export / "labels.txt").read_text().split("\n") == [
        "circle",
        "square",
        "triangle",
        "",
    ]
    signature = json.loads((onnx_export / "signature.json").read_text())
    assert signature["input"] == {
        "dtype": "float32",
        "shape": [None, None, None, 3],
        "layout": "NHWC",
        "channels": "RGB",
        "range": [0, 255],
        "resize": "inside the model: bilinear to 32x32, no antialiasing",
    }
    assert signature["output"]["kind"] == "softmax" and signature["output"]["columns"] == 3
    check = json.loads((onnx_export / "export.json").read_text())
    assert check["passed"] and check["max_difference"] <= 1e-4 and check["agreement"] == 1.0
    assert check["accuracy_keras"] == check["accuracy_export"]
    assert check["size_bytes"] == (onnx_export / "model.onnx").stat().st_size
    assert check["latency_ms"] > 0 and check["source"].startswith("the run's test split")


def test_the_onnx_file_carries_its_signature_inside(onnx_export: Path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_export / "model.onnx"))
    inside = session.get_modelmeta().custom_metadata_map["zoo"]
    assert json.loads(inside) == json.loads((onnx_export / "signature.json").read_text())


def test_predict_on_an_export_answers_as_on_the_run(run_dir, onnx_export, photos):
    on_run = run_zoo("predict", str(run_dir), *photos, "--json")
    for exported in (onnx_export, onnx_export / "model.onnx"):
        on_export = run_zoo("predict", str(exported), *photos, "--json")
        assert on_export.exit_code == 0, on_export.stderr
        assert on_export.json()["runtime"]["name"] == "onnx"
        pairs = zip(on_run.json()["predictions"], on_export.json()["predictions"], strict=True)
        for ran, shipped in pairs:
            assert ran["class"] == shipped["class"]
            assert ran["probability"] == pytest.approx(shipped["probability"], abs=1e-5)


def test_an_onnx_file_without_its_signature_json_uses_the_copy_inside(
    onnx_export, photos, tmp_path
):
    alone = tmp_path / "alone.onnx"
    alone.write_bytes((onnx_export / "model.onnx").read_bytes())

    result = run_zoo("predict", str(alone), photos[0], "--json")

    assert result.exit_code == 0, result.stderr
    assert result.json()["class_names"] == ["circle", "square", "triangle"]


@pytest.mark.parametrize(
    ("damage", "complaint"),
    [
        ("truncated model", "is not an ONNX model ONNX Runtime can run"),
        ("garbage signature", "signature.json is not JSON"),
        ("signature of two classes", "does not describe it: the file has 3 outputs"),
        ("signature naming a path", "field 'format' is not as zoo export writes it"),
    ],
)
def test_a_damaged_export_is_a_clear_error(onnx_export, photos, tmp_path, damage, complaint):
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in onnx_export.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    signature = json.loads((copy / "signature.json").read_text())
    if damage == "truncated model":
        data = (copy / "model.onnx").read_bytes()
        (copy / "model.onnx").write_bytes(data[: len(data) // 3])
    elif damage == "garbage signature":
        (copy / "signature.json").write_bytes(b"\x00\xff{not json")
    elif damage == "signature of two classes":
        signature["class_names"] = ["cat", "dog"]
        write(copy / "signature.json", json.dumps(signature))
    else:
        signature["format"] = "../../etc/passwd"
        write(copy / "signature.json", json.dumps(signature))

    result = run_zoo("predict", str(copy), photos[0])

    assert result.exit_code == 2
    assert complaint in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (["--format", "onnx", "--quantize", "int8"], "onnx exports have no 'int8' quantization"),
        (["--format", "litert", "--io", "uint8"], "--io uint8 needs an int8 model"),
        (["--format", "openvino", "--quantize", "dynamic"], "no 'dynamic' quantization"),
        (["--format", "keras", "--quantize", "int8"], "--quantize applies to the litert"),
        (["--format", "onnx", "--check-images", "0"], "--check-images must be 1 or more"),
        (["--format", "onnx", "--max-drop", "-1"], "--max-drop is accuracy points"),
    ],
)
def test_options_a_format_lacks_are_refused_before_anything_is_written(
    zoo_cli, run_dir, isolated, flags, complaint
):
    output = isolated / ("out.keras" if "keras" in flags else "out")

    result = zoo_cli("export", str(run_dir), "--output", str(output), *flags)

    assert result.exit_code == 2
    assert complaint in " ".join(result.stderr.split())
    assert not output.exists()


def test_an_output_named_like_a_file_is_refused_with_the_folder_to_pass(zoo_cli, run_dir):
    result = zoo_cli("export", str(run_dir), "--format", "litert", "--output", "cats.tflite")

    assert result.exit_code == 2
    assert "pass --output cats" in " ".join(result.stderr.split())


def test_a_missing_runtime_names_the_extra_to_install(run_dir, isolated):
    write(isolated / "hide" / "sitecustomize.py", 'import sys\nsys.modules["onnxruntime"] = None\n')
    env = {"PYTHONPATH": str(isolated / "hide")}

    result = run_zoo("export", str(run_dir), "--format", "onnx", "--output", "out", env=env)

    assert result.exit_code == 2
    assert "pip install 'zoo[onnx]'" in result.stderr
    assert not (isolated / "out").exists()


def test_an_export_never_overwrites(zoo_cli, run_dir, onnx_export):
    before = (onnx_export / "model.onnx").read_bytes()

    result = zoo_cli("export", str(run_dir), "--format", "onnx", "--output", str(onnx_export))

    assert result.exit_code == 2 and "already exists" in result.stderr
    assert (onnx_export / "model.onnx").read_bytes() == before


def test_predict_on_an_export_refuses_a_runtime_choice(onnx_export, photos):
    result = run_zoo("predict", str(onnx_export), photos[0], "--runtime", "openvino")

    assert result.exit_code == 2
    assert "an export runs on the runtime of its format" in " ".join(result.stderr.split())


def test_the_check_compares_probabilities_of_the_same_images(run_dir):
    """The numbers export.json reports, worked out by hand for a runner that is off."""
    import zoo
    from zoo.results.exports.check import check
    from zoo.results.exports.samples import Sample
    from zoo.results.predict import load_trained

    trained = load_trained(run_dir, zoo.load_registry(zoo.LoadOptions(builtins_only=True)))
    images = np.stack([np.full((32, 32, 3), v, np.float32) for v in (0, 90, 180, 255)])
    reference = trained.model.predict(images, verbose=0)

    class Off:
        input_dtype, image_size, outputs = "float32", 32, 3

        def __call__(self, batch):
            return trained.model.predict(batch, verbose=0)[:, ::-1]  # classes reversed

    labels = np.argmax(reference, axis=-1)
    result = check(
        trained.model,
        Off(),
        Sample(images, labels, "four grey squares"),
        fmt="onnx",
        quantization=None,
        files=[],
        max_drop=2,
    )

    assert result.accuracy_keras == 1.0
    assert result.accuracy_export == np.mean(np.argmax(reference[:, ::-1], -1) == labels)
    assert result.max_difference == pytest.approx(np.max(np.abs(reference - reference[:, ::-1])))
    assert not result.passed and "over 0.0001" in result.reason


def test_an_op_onnx_lacks_is_refused_at_export_naming_where_it_is(tmp_path):
    import keras
    import tensorflow as tf

    import zoo
    from zoo.results.exports.onnx import write_onnx

    class Singular(keras.layers.Layer):
        def call(self, x):
            return tf.linalg.svd(tf.reshape(x, (-1, 4, 4)), compute_uv=False)

    inputs = keras.Input((4, 4, 1))
    outputs = keras.layers.Dense(2, activation="softmax")(Singular(name="singular")(inputs))

    with pytest.raises(zoo.ZooError, match=r"no equivalent for \(Svd\), first at .*singular"):
        write_onnx(keras.Model(inputs, outputs), tmp_path / "m.onnx", metadata={})


def test_exact_gelu_converts_although_tf2onnx_lacks_erfc(tmp_path):
    """ViT, DINOv2 and CLIP use exact GELU, which TensorFlow computes with erfc."""
    import keras
    import onnxruntime

    from zoo.results.exports.onnx import write_onnx

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="gelu")(keras.layers.Resizing(8, 8)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    images = np.random.default_rng(0).uniform(-4, 4, (5, 8, 8, 3)).astype(np.float32)

    write_onnx(model, tmp_path / "m.onnx", metadata={})
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    [answer] = session.run(None, {session.get_inputs()[0].name: images})

    np.testing.assert_allclose(answer, model.predict(images, verbose=0), atol=1e-5)
