"""``zoo export``: both formats reload and give ``zoo predict``'s probabilities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_predict import shape_image, train_tiny


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs"), ["shapes", "small_cnn", "gap_sigmoid"])


@pytest.fixture
def raw_image(isolated: Path) -> np.ndarray:
    """A uint8 image of the training size (32x32), also saved as raw.png."""
    image = shape_image("circle", size=(32, 32), seed=7)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    Image.fromarray(image).save(isolated / "raw.png")
    return image


def predicted(zoo_cli, run_dir: Path) -> dict[str, float]:
    """``zoo predict``'s probabilities for raw.png, by class."""
    result = zoo_cli("predict", str(run_dir), "raw.png", "--json")
    assert result.exit_code == 0, result.stderr
    [prediction] = result.json()["predictions"]
    return {t["class"]: t["probability"] for t in prediction["top_k"]}


def test_savedmodel_serves_raw_uint8_pixels_like_zoo_predict(zoo_cli, run_dir, raw_image):
    import tensorflow as tf

    result = zoo_cli("export", str(run_dir), "--format", "savedmodel", "--output", "served/1")

    assert result.exit_code == 0, result.stderr
    # model.export's own summary is silenced: stdout holds zoo's line alone.
    assert result.stdout == "exported (savedmodel): served/1\n"
    served = tf.saved_model.load("served/1")
    assert {"serve", "serve_float32", "serving_default"} <= set(served.signatures)
    p_square = float(served.serve(raw_image[None]).numpy()[0, 0])
    p_float = float(served.serve_float32(raw_image[None].astype("float32")).numpy()[0, 0])
    default = served.signatures["serving_default"](images=tf.constant(raw_image[None]))
    expected = predicted(zoo_cli, run_dir)["square"]  # the second class: the sigmoid's
    assert p_square == pytest.approx(expected, abs=1e-6)
    assert p_float == pytest.approx(expected, abs=1e-6)
    assert float(next(iter(default.values())).numpy()[0, 0]) == pytest.approx(expected, abs=1e-6)


def test_keras_export_reloads_and_predicts_like_zoo_predict(zoo_cli, run_dir, raw_image):
    import keras

    result = zoo_cli("export", str(run_dir), "--output", "model.keras", "--json")

    assert result.exit_code == 0, result.stderr
    assert result.json() == {"run_dir": str(run_dir), "format": "keras", "output": "model.keras"}
    assert Path("model.keras").read_bytes() == (run_dir / "model.keras").read_bytes()
    model = keras.models.load_model("model.keras")
    p_square = float(model.predict_on_batch(raw_image[None].astype("float32"))[0, 0])
    assert p_square == pytest.approx(predicted(zoo_cli, run_dir)["square"], abs=1e-6)


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
