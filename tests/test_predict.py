"""``zoo predict``: files and folders, formats, unreadable files, top-k, exit codes."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo

#: What TINY_RUN sets, for training in a fixture (without the CLI).
TINY_SETTINGS = {"epochs": 1, "image_size": 32, "batch_size": 8}
TINY_SETS = ["dataset.num_images=40", "dataset.min_size=24", "dataset.max_size=40"]


def train_tiny(output: Path, names: Sequence[str], sets: Sequence[str] = ()) -> Path:
    """Train ``names`` for one epoch on 32 tiny images; return the run directory."""
    registry = zoo.load_registry(zoo.LoadOptions(builtins_only=True))
    resolved = zoo.resolve_run(registry, names, settings=TINY_SETTINGS, sets=[*TINY_SETS, *sets])
    run_dir = zoo.run(resolved, output=output).run_dir
    assert run_dir is not None
    return run_dir


def shape_image(shape: str, size: tuple[int, int] = (50, 37), seed: int = 0) -> np.ndarray:
    """A uint8 picture of ``shape``, drawn as the ``shapes`` dataset draws them."""
    zoo.load_registry(zoo.LoadOptions(builtins_only=True))
    draw = sys.modules["zoo.builtins.shapes"].draw
    return draw(np.random.default_rng(seed), shape, min(size), max(size), 8.0)


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs"), ["shapes", "small_cnn", "gap_sigmoid"])


@pytest.fixture(scope="module")
def three_class_run(tmp_path_factory) -> Path:
    return train_tiny(
        tmp_path_factory.mktemp("runs"),
        ["shapes", "small_cnn", "gap_softmax"],
        sets=["dataset.classes=circle,square,triangle"],
    )


@pytest.fixture
def photos(isolated: Path) -> Path:
    """A folder of images in every format, nested, with a stray text file."""
    folder = isolated / "photos"
    (folder / "nested" / "deeper").mkdir(parents=True)
    for name, shape in (
        ("a.png", "circle"),
        ("b.JPG", "square"),
        ("nested/c.gif", "circle"),
        ("nested/deeper/d.bmp", "square"),
    ):
        Image.fromarray(shape_image(shape)).save(folder / name)
    (folder / "notes.txt").write_text("not an image, and not named like one\n")
    return folder


def test_a_folder_is_predicted_recursively(zoo_cli, binary_run: Path, photos: Path):
    result = zoo_cli("predict", str(binary_run), str(photos), "--json")

    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["class_names"] == ["circle", "square"]
    assert [Path(p["file"]).relative_to(photos).as_posix() for p in data["predictions"]] == [
        "a.png",
        "b.JPG",
        "nested/c.gif",
        "nested/deeper/d.bmp",
    ]
    for prediction in data["predictions"]:
        first, second = prediction["top_k"]
        assert prediction["class"] == first["class"] and first["probability"] >= 0.5
        assert first["probability"] + second["probability"] == pytest.approx(1.0)
    assert data["errors"] == []


def test_unreadable_files_are_listed_and_the_rest_predicted(zoo_cli, binary_run, photos):
    (photos / "truncated.png").write_bytes((photos / "a.png").read_bytes()[:60])
    (photos / "empty.jpg").write_bytes(b"")

    result = zoo_cli("predict", str(binary_run), str(photos), "missing.png", "--json")

    assert result.exit_code == 1
    data = result.json()
    assert len(data["predictions"]) == 4
    errors = {Path(e["file"]).name: e["error"] for e in data["errors"]}
    assert set(errors) == {"missing.png", "truncated.png", "empty.jpg"}
    assert errors["empty.jpg"] == "the file is empty (0 bytes)"


def test_the_table_names_each_file_and_each_failure(zoo_cli, binary_run, photos):
    result = zoo_cli("predict", str(binary_run), str(photos / "a.png"), str(photos / "notes.txt"))

    assert result.exit_code == 1
    assert "predictions" in result.stdout and "unreadable" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "a.png" in line)
    assert row.split()[1] in {"circle", "square"}
    assert "notes.txt" in result.stdout
    assert "predicted 1 files; 1 could not be read" in result.stderr


def test_prediction_resizes_exactly_as_training(zoo_cli, binary_run, isolated: Path):
    import keras
    import tensorflow as tf

    image = shape_image("square", size=(53, 41), seed=3)
    Image.fromarray(image).save(isolated / "odd_size.png")

    result = zoo_cli("predict", str(binary_run), "odd_size.png", "--json")

    model = keras.models.load_model(binary_run / "model.keras")
    resized = tf.image.resize(image, (32, 32))  # zoo.data.pipeline.resize_images, per image
    p_square = float(model.predict_on_batch(resized[None])[0, 0])
    [prediction] = result.json()["predictions"]
    top = {t["class"]: t["probability"] for t in prediction["top_k"]}
    assert top["square"] == pytest.approx(p_square, abs=1e-6)


def test_multi_class_runs_give_the_top_k(zoo_cli, three_class_run, photos):
    all_three = zoo_cli("predict", str(three_class_run), str(photos / "a.png"), "--json")
    top_two = zoo_cli("predict", str(three_class_run), str(photos), "--top-k", "2", "--json")
    table = zoo_cli("predict", str(three_class_run), str(photos / "a.png"))

    [prediction] = all_three.json()["predictions"]
    probabilities = [t["probability"] for t in prediction["top_k"]]
    assert {t["class"] for t in prediction["top_k"]} == {"circle", "square", "triangle"}
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert all(len(p["top_k"]) == 2 for p in top_two.json()["predictions"])
    assert "top 3" in table.stdout


def test_large_folders_go_in_batches(zoo_cli, binary_run, photos):
    for i in range(7):
        shutil.copyfile(photos / "a.png", photos / f"copy{i}.png")

    result = zoo_cli("predict", str(binary_run), str(photos), "--batch-size", "3", "--json")

    assert result.exit_code == 0
    predictions = result.json()["predictions"]
    assert len(predictions) == 11
    copies = {round(p["probability"], 6) for p in predictions if "copy" in p["file"]}
    assert len(copies) == 1  # the same image in different batches, the same answer
    assert "predicting 11 files: done" in result.stderr


def test_a_run_without_a_model_is_a_user_error(zoo_cli, binary_run, photos, isolated):
    failed = isolated / "failed_run"
    shutil.copytree(binary_run, failed, ignore=shutil.ignore_patterns("model.keras"))
    metrics = json.loads((failed / "metrics.json").read_text())
    (failed / "metrics.json").write_text(json.dumps({**metrics, "status": "failed"}))

    result = zoo_cli("predict", str(failed), str(photos))

    assert result.exit_code == 2
    assert "has no trained model (model.keras); its status is 'failed'" in result.stderr


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["empty_folder"], "found no image files"),
        (["photos", "--top-k", "0"], "--top-k must be 1 or more"),
    ],
)
def test_bad_arguments_exit_2(zoo_cli, binary_run, photos, isolated, args, complaint):
    (isolated / "empty_folder").mkdir()

    result = zoo_cli("predict", str(binary_run), *args)

    assert result.exit_code == 2
    assert complaint in result.stderr
