"""``zoo export``: what each format holds and serves, and what it refuses to write.

That every component's run exports in a new process, and that the exports work without
zoo, is in ``tests/test_reload.py``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_predict import shape_image, train_tiny


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs"), ["shapes", "small_cnn", "gap_sigmoid"])


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory) -> Path:
    return train_tiny(
        tmp_path_factory.mktemp("runs"),
        ["shapes", "small_cnn", "gap_softmax"],
        sets=["dataset.classes=circle,square,triangle"],
    )


@pytest.fixture
def pictures(isolated: Path) -> dict[str, np.ndarray]:
    """A circle of the training size (32x32) and one of 227x100, saved as PNGs."""
    found = {}
    for name, size in (("raw", (32, 32)), ("odd", (100, 227))):
        image = np.asarray(
            Image.fromarray(shape_image("circle", seed=7)).resize(size[::-1], Image.BILINEAR)
        )
        assert image.shape == (*size, 3) and image.dtype == np.uint8
        Image.fromarray(image).save(isolated / f"{name}.png")
        found[name] = image
    return found


def predicted(zoo_cli, run_dir: Path, picture: str) -> dict[str, float]:
    """``zoo predict``'s probabilities for a picture, by class."""
    result = zoo_cli("predict", str(run_dir), picture, "--json")
    assert result.exit_code == 0, result.stderr
    [prediction] = result.json()["predictions"]
    return {t["class"]: t["probability"] for t in prediction["top_k"]}


@pytest.mark.parametrize("picture", ["raw", "odd"])
def test_savedmodel_serves_any_size_of_uint8_or_float_pixels_like_zoo_predict(
    zoo_cli, run_dir, pictures, picture
):
    import tensorflow as tf

    result = zoo_cli("export", str(run_dir), "--format", "savedmodel", "--output", "served/1")

    assert result.exit_code == 0, result.stderr
    # model.export's own summary is silenced: stdout holds zoo's line alone.
    assert result.stdout == "exported (savedmodel): served/1\nloads with: tensorflow installed\n"
    served = tf.saved_model.load("served/1")
    assert set(served.signatures) == {"serve", "serve_float32", "serving_default", "class_names"}
    image = pictures[picture][None]
    answers = [
        served.signatures["serving_default"](images=tf.constant(image)),
        served.serve(image),
        served.serve_float32(image.astype("float32")),
    ]
    expected = predicted(zoo_cli, run_dir, f"{picture}.png")
    for answer in answers:
        probabilities = answer["probabilities"][0].numpy().tolist()
        assert dict(zip(["circle", "square"], probabilities, strict=True)) == pytest.approx(
            expected, abs=1e-5
        )
        assert answer["class"][0].numpy().decode() == max(expected, key=expected.get)
        assert float(answer["probability"][0]) == pytest.approx(max(expected.values()), abs=1e-5)


def test_savedmodel_holds_the_class_names_and_the_manifest(zoo_cli, three_classes, pictures):
    import tensorflow as tf

    zoo_cli("export", str(three_classes), "--format", "savedmodel", "--output", "served")

    served = tf.saved_model.load("served")
    names = served.signatures["class_names"]()["class_names"].numpy().tolist()
    answer = served.serve(pictures["odd"][None])
    manifest = json.loads(Path("served/assets.extra/zoo.json").read_text())
    expected = predicted(zoo_cli, three_classes, "odd.png")
    assert names == [b"circle", b"square", b"triangle"]
    assert manifest["class_names"] == ["circle", "square", "triangle"]
    assert (manifest["image_size"], manifest["output"]) == (32, "softmax")
    probabilities = answer["probabilities"][0].numpy().tolist()
    assert dict(zip(manifest["class_names"], probabilities, strict=True)) == pytest.approx(
        expected, abs=1e-5
    )


def test_keras_export_takes_any_size_and_holds_the_class_names(zoo_cli, run_dir, pictures):
    import keras

    result = zoo_cli("export", str(run_dir), "--output", "model.keras", "--json")

    assert result.exit_code == 0, result.stderr
    assert result.json() == {
        "run_dir": str(run_dir),
        "format": "keras",
        "output": "model.keras",
        "requires": ["keras", "tensorflow"],
    }
    model = keras.models.load_model("model.keras")
    manifest = json.loads(zipfile.ZipFile("model.keras").read("zoo.json"))
    assert manifest["class_names"] == ["circle", "square"]
    assert manifest["keras_objects"] == []  # Keras's own layers only: plain Keras loads it
    assert manifest["requires"] == []
    for picture in ("raw", "odd"):
        p_square = float(model.predict_on_batch(pictures[picture][None])[0, 0])
        assert p_square == pytest.approx(predicted(zoo_cli, run_dir, f"{picture}.png")["square"])
    assert model.count_params() == keras.models.load_model(run_dir / "model.keras").count_params()


@pytest.mark.parametrize(
    ("source", "args", "complaint"),
    [
        ("trained", ["--output", "exists"], "already exists; zoo export never overwrites"),
        ("trained", ["--output", "model.h5"], "must end in .keras"),
        ("failed", ["--format", "savedmodel", "--output", "out"], "has no trained model"),
        ("failed", ["--output", "out.keras"], "its status is 'failed'"),
    ],
)
def test_export_refuses_what_it_cannot_do_well(zoo_cli, run_dir, isolated, source, args, complaint):
    (isolated / "exists").mkdir()
    failed = isolated / "failed"
    failed.mkdir()
    (failed / "config.json").write_text((run_dir / "config.json").read_text())
    (failed / "metrics.json").write_text(json.dumps({"status": "failed", "history": []}))

    result = zoo_cli("export", str(run_dir if source == "trained" else failed), *args)

    assert result.exit_code == 2
    assert complaint in result.stderr
    assert {p.name for p in isolated.iterdir()} == {"exists", "failed"}
