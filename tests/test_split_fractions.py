"""Split fractions: ``validation_fraction`` and ``test_fraction`` of the datasets that
split one pool (``image_folder``, ``cats_vs_dogs``, ``tfds``, ``shapes``), set with
``--set dataset.validation_fraction=0.2``, checked, recorded, and part of the data's
identity. TFDS's split strings are tested in ``test_tfds_datasets.py``.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_zoo
from PIL import Image

import zoo

zoo.load_registry(zoo.LoadOptions(builtins_only=True))  # imports zoo.builtins.*
IMAGE_FOLDER = importlib.import_module("zoo.builtins.image_folder")
SHAPES = importlib.import_module("zoo.builtins.shapes")
#: small_cnn's smallest input is 22x22.
TINY_RUN = ["--epochs", "1", "--image-size", "24", "--batch-size", "8", "--json"]
POOL_DATASETS = ("image_folder", "cats_vs_dogs", "tfds", "shapes")
FRACTIONS = {"validation_fraction": 0.2, "test_fraction": 0.3}


def pngs(folder: Path, count: int, colour: tuple[int, int, int]) -> None:
    """``count`` tiny PNGs of one colour, as ``0.png``, ``1.png``..."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((8, 8, 3), colour, np.uint8)).save(folder / f"{i}.png")


def two_classes(root: Path, count: int = 20) -> Path:
    pngs(root / "red", count, (255, 0, 0))
    pngs(root / "blue", count, (0, 0, 255))
    return root


def build(path: Path, **params: float) -> zoo.Splits:
    return IMAGE_FOLDER.build({"path": str(path), "seed": 0, **params})


def fractions(validation: float, test: float) -> list[str]:
    return [
        "--set", f"dataset.validation_fraction={validation}",
        "--set", f"dataset.test_fraction={test}",
    ]  # fmt: skip


# The command line ------------------------------------------------------------------------


def test_a_run_splits_at_the_fractions_set_and_records_them(isolated: Path):
    data = two_classes(isolated / "data")

    result = run_zoo(
        "run", "image_folder", "small_cnn", "gap_sigmoid", *TINY_RUN,
        "--set", f"dataset.path={data}", *fractions(0.2, 0.3),
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    dataset = result.json()["dataset"]
    # Per class of 20: 20% is 4 for validation, 30% is 6 for test, 10 left to train.
    assert dataset["sizes"] == {"train": 20, "validation": 8, "test": 12}
    assert dataset["class_counts"]["test"] == {"blue": 6, "red": 6}
    run_dir = Path(result.json()["run_dir"])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"]["params"]["validation_fraction"] == 0.2
    assert config["dataset"]["params"]["test_fraction"] == 0.3
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["dataset"]["fingerprint"] == build(data, **FRACTIONS).fingerprint


@pytest.mark.parametrize(
    ("validation", "test", "message"),
    [
        ("0.6", "0.5", "hold out 110% of the images, leaving none to train on"),
        ("0.2", "0", "leave the test split empty"),
        ("1", "0.1", "bad value for parameter 'validation_fraction'"),
    ],
)
def test_bad_fractions_exit_2_and_say_what_to_pass(
    isolated: Path, validation: str, test: str, message: str
):
    data = two_classes(isolated / "data", count=5)

    result = run_zoo(
        "run", "image_folder", "small_cnn", "gap_sigmoid", *TINY_RUN,
        "--set", f"dataset.path={data}", *fractions(validation, test),
    )  # fmt: skip

    assert result.exit_code == 2, result.stderr
    said = " ".join(result.stderr.split())
    assert message in said
    assert "dataset.validation_fraction" in said and "Traceback" not in said
    if "bad value" not in message:  # zoo's checks name both values
        assert f"validation_fraction={float(validation):g}" in said
        assert f"test_fraction={float(test):g}" in said


@pytest.mark.parametrize("name", POOL_DATASETS)
def test_zoo_info_lists_both_fractions_of_every_dataset_that_splits_one_pool(name: str):
    result = run_zoo("info", name, "--json")

    assert result.exit_code == 0, result.stderr
    params = {p["name"]: p for p in result.json()[0]["params"]}
    for split in ("validation", "test"):
        assert params[f"{split}_fraction"]["type"] == "float"
        assert params[f"{split}_fraction"]["default"] == 0.1


# image_folder ----------------------------------------------------------------------------


def test_the_split_at_set_fractions_is_seeded_and_changes_the_fingerprint(isolated: Path):
    data = two_classes(isolated / "data")

    first, again = build(data, **FRACTIONS), build(data, **FRACTIONS)
    default, reseeded = build(data), IMAGE_FOLDER.build({"path": str(data), "seed": 1, **FRACTIONS})

    assert first.sizes == {"train": 20, "validation": 8, "test": 12}
    assert default.sizes == {"train": 32, "validation": 4, "test": 4}
    assert first.files == again.files != reseeded.files
    assert first.fingerprint == again.fingerprint
    assert len({first.fingerprint, default.fingerprint, reseeded.fingerprint}) == 3


def test_the_fraction_of_a_split_the_folder_has_is_not_used_and_said(
    isolated: Path, capsys: pytest.CaptureFixture[str]
):
    for split, count in (("train", 20), ("test", 3)):
        two_classes(isolated / "data" / split, count)

    splits = build(isolated / "data", **FRACTIONS)

    assert splits.sizes == {"train": 32, "validation": 8, "test": 6}  # test: test/'s own
    said = " ".join(capsys.readouterr().err.split())
    assert "test_fraction=0.3 is not used: the test split is the data's own" in said
    assert "validation_fraction" not in said


def test_fractions_of_a_split_the_folder_has_may_add_up_past_one(isolated: Path):
    """Only the carved fractions must leave training images."""
    for split in ("train", "test"):
        two_classes(isolated / "data" / split, 10)

    splits = build(isolated / "data", validation_fraction=0.5, test_fraction=0.9)

    assert splits.sizes == {"train": 10, "validation": 10, "test": 20}


def test_a_negative_fraction_is_refused_before_any_image_is_read(isolated: Path):
    data = two_classes(isolated / "data", count=1)  # too few to split: never reached

    with pytest.raises(zoo.ZooError, match="leave the validation split empty") as caught:
        build(data, validation_fraction=-0.1)

    assert caught.value.got == "validation_fraction=-0.1, test_fraction=0.1"


def test_a_share_too_small_to_hold_an_image_names_the_percentage(isolated: Path):
    data = two_classes(isolated / "data", count=2)  # 15% of 2 rounds to 0

    with pytest.raises(zoo.ZooError) as caught:
        build(data, validation_fraction=0.15, test_fraction=0.5)

    assert "the validation split carved from" in str(caught.value)
    assert "a 15% validation share (4 or more in a class)" in caught.value.expected
    assert "dataset.validation_fraction" in caught.value.fix


def test_a_class_all_carved_away_says_to_lower_the_fractions(isolated: Path):
    data = two_classes(isolated / "data", count=2)  # 45% of 2 rounds to 1, twice

    with pytest.raises(zoo.ZooError, match="2 carved for validation and test") as caught:
        build(data, validation_fraction=0.45, test_fraction=0.45)

    assert "lower dataset.validation_fraction" in caught.value.fix


# shapes ----------------------------------------------------------------------------------


def shapes(**params: float) -> zoo.Splits:
    defaults = {p.name: p.default for p in SHAPES.PARAMS}
    return SHAPES.build({**defaults, "num_images": 40, "min_size": 8, "max_size": 12, **params})


def test_shapes_splits_its_generated_images_at_the_fractions():
    assert shapes().sizes == {"train": 32, "validation": 4, "test": 4}
    assert shapes(**FRACTIONS).sizes == {"train": 20, "validation": 8, "test": 12}


def test_shapes_too_few_images_for_a_split_is_a_clear_error():
    with pytest.raises(zoo.ZooError, match="the validation split of 40 images is empty"):
        shapes(validation_fraction=0.02)
