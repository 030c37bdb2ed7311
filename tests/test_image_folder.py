"""The ``image_folder`` dataset: your own images, one subfolder per class.

Folders are generated with ``test_images.write_images``: good images of every format
and mode zoo reads, next to each kind of unreadable file.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_zoo
from PIL import Image
from test_images import BAD, GOOD, write_images

import zoo

zoo.load_registry(zoo.LoadOptions(builtins_only=True))  # imports zoo.builtins.*
IMAGE_FOLDER = importlib.import_module("zoo.builtins.image_folder")
TINY_RUN = ["--epochs", "1", "--image-size", "32", "--batch-size", "8", "--json"]
#: Unreadable images per folder written by ``write_images`` (the OTHERS are no images).
UNREADABLE = len(BAD)


def photos(folder: Path, count: int, colour: tuple[int, int, int], size: int = 24) -> None:
    """``count`` small JPEGs of one colour with noise, as ``0.jpg``, ``1.jpg``..."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(list(colour))
    for i in range(count):
        pixels = np.clip(rng.normal(colour, 30, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)


def build(path: Path, seed: int = 0) -> zoo.Splits:
    return IMAGE_FOLDER.build({"path": str(path), "seed": seed})


def labels(dataset) -> list[int]:
    return [int(label) for _, label in dataset.as_numpy_iterator()]


# Reading a mixed folder ------------------------------------------------------------------


def test_every_format_and_mode_is_read_and_every_unreadable_file_counted(isolated: Path):
    for name in ("Cat", "Dog"):
        write_images(isolated / "PetImages" / name)

    splits = build(isolated / "PetImages")

    assert list(splits.class_names) == ["Cat", "Dog"]
    assert splits.skipped == 2 * UNREADABLE
    assert sum(splits.sizes.values()) == 2 * len(GOOD)
    for split in ("train", "validation", "test"):
        pairs = list(getattr(splits, split).as_numpy_iterator())
        assert len(pairs) == splits.sizes[split] > 0
        for image, label in pairs:
            assert image.dtype == np.uint8 and image.shape == (16, 24, 3) and label in (0, 1)


def test_resnet50_trains_on_a_few_hundred_images_and_reports_the_skipped(zoo_cli, isolated):
    """The tutorial's transfer setup (random weights here) on a folder like Kaggle's."""
    photos(isolated / "PetImages" / "Cat", 100, (200, 120, 60))
    photos(isolated / "PetImages" / "Dog", 100, (60, 90, 160))
    for name in ("Cat", "Dog"):
        write_images(isolated / "PetImages" / name, good=False)

    result = zoo_cli(
        "run", "image_folder", "resnet50", "gap_sigmoid", *TINY_RUN,
        "--set", f"dataset.path={isolated / 'PetImages'}", "--set", "backbone.weights=none",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert f"skipped {2 * UNREADABLE} unreadable files" in result.stderr
    metrics = json.loads((Path(result.json()["run_dir"]) / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["dataset"]["sizes"] == {"train": 160, "validation": 20, "test": 20}
    assert metrics["parameters"]["trainable"] == 2_049


# Splits ----------------------------------------------------------------------------------


def test_the_split_is_80_10_10_per_class_and_fixed_by_the_seed(isolated: Path):
    data = isolated / "data"
    photos(data / "a", 20, (255, 0, 0))
    photos(data / "b", 10, (0, 0, 255))

    first, again, other = build(data), build(data), build(data, seed=1)

    assert first.sizes == {"train": 24, "validation": 3, "test": 3}
    assert sorted(labels(first.validation)) == [0, 0, 1]  # 10% of each class
    assert first.fingerprint == again.fingerprint != other.fingerprint
    test_pixels = [image.tobytes() for image, _ in first.test.as_numpy_iterator()]
    assert test_pixels == [image.tobytes() for image, _ in again.test.as_numpy_iterator()]


def test_the_folders_own_train_validation_and_test_folders_are_kept(isolated: Path):
    for split, count in (("train", 6), ("val", 2), ("test", 3)):
        photos(isolated / "data" / split / "cat", count, (255, 200, 0))
        photos(isolated / "data" / split / "dog", count, (0, 200, 255))

    splits = build(isolated / "data")

    assert list(splits.class_names) == ["cat", "dog"]
    assert splits.sizes == {"train": 12, "validation": 4, "test": 6}
    assert sorted(labels(splits.test)) == [0, 0, 0, 1, 1, 1]


def test_a_missing_validation_folder_is_carved_from_train(isolated: Path):
    for split, count in (("train", 20), ("test", 3)):
        photos(isolated / "data" / split / "cat", count, (255, 200, 0))
        photos(isolated / "data" / split / "dog", count, (0, 200, 255))

    splits = build(isolated / "data")

    assert splits.sizes == {"train": 36, "validation": 4, "test": 6}


def test_verdicts_are_cached_and_only_new_files_are_decoded(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    photos(isolated / "data" / "a", 10, (255, 0, 0))
    photos(isolated / "data" / "b", 10, (0, 0, 255))
    build(isolated / "data")
    decoded: list[Path] = []
    find_unreadable = zoo.find_unreadable

    def counting(paths):
        decoded.extend(paths)
        return find_unreadable(paths)

    monkeypatch.setattr(zoo, "find_unreadable", counting)
    (isolated / "data" / "b" / "new.jpg").write_bytes(b"")

    splits = build(isolated / "data")

    assert decoded == [isolated / "data" / "b" / "new.jpg"]
    assert splits.skipped == 1


# Errors ----------------------------------------------------------------------------------


def error(zoo_cli, path: Path) -> str:
    result = zoo_cli(
        "run", "image_folder", "small_cnn", "gap_sigmoid", *TINY_RUN,
        "--set", f"dataset.path={path}",
    )  # fmt: skip
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    return " ".join(result.stderr.split())  # rich wraps long lines


def test_a_missing_folder_is_a_clear_error(zoo_cli, isolated: Path):
    assert f"the folder {isolated / 'nowhere'} does not exist" in error(
        zoo_cli, isolated / "nowhere"
    )


def test_an_empty_folder_is_a_clear_error(zoo_cli, isolated: Path):
    (isolated / "empty").mkdir()

    assert "has 0 class folder(s); a classifier needs two or more" in error(
        zoo_cli, isolated / "empty"
    )


def test_a_single_class_is_a_clear_error(zoo_cli, isolated: Path):
    photos(isolated / "PetImages" / "Cat", 3, (255, 0, 0))

    message = error(zoo_cli, isolated / "PetImages")

    assert "has 1 class folder(s)" in message and "['Cat']" in message


def test_loose_images_without_class_folders_are_pointed_out(zoo_cli, isolated: Path):
    photos(isolated / "pictures", 4, (255, 0, 0))

    assert "It holds 4 images directly" in error(zoo_cli, isolated / "pictures")


def test_a_class_with_no_readable_image_is_a_clear_error(zoo_cli, isolated: Path):
    photos(isolated / "PetImages" / "Cat", 10, (255, 0, 0))
    write_images(isolated / "PetImages" / "Dog", good=False)

    message = error(zoo_cli, isolated / "PetImages")

    assert f"class 'Dog' has no readable training image ({UNREADABLE} file(s)" in message


def test_split_folders_mixed_with_class_folders_are_a_clear_error(zoo_cli, isolated: Path):
    photos(isolated / "train" / "cat", 3, (255, 0, 0))
    photos(isolated / "dog", 3, (0, 0, 255))

    assert "has a train/ folder and other folders besides" in error(zoo_cli, isolated)


def test_a_class_only_in_the_test_folder_is_a_clear_error(zoo_cli, isolated: Path):
    for name in ("cat", "dog"):
        photos(isolated / "train" / name, 10, (255, 0, 0))
    photos(isolated / "test" / "bird", 2, (0, 0, 255))

    assert "has class folders that" in error(zoo_cli, isolated)


# The cache of verdicts heals --------------------------------------------------------------


def change_a_verdict(path: Path) -> None:
    """Mark a good file unreadable: valid JSON, which only the checksum tells from the truth."""
    data = json.loads(path.read_text())
    data["files"][sorted(data["files"])[0]][2] = "made up"
    path.write_text(json.dumps(data))


def cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (cut_in_half, "it does not read: "),
        (change_a_verdict, "its SHA-256 differs from when it was written"),
        (Path.unlink, None),  # no cache is no damage: only a first run
    ],
)
def test_a_damaged_verdict_cache_is_said_once_and_every_file_checked_again(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys, damage, said
):
    photos(isolated / "data" / "a", 5, (255, 0, 0))
    photos(isolated / "data" / "b", 5, (0, 0, 255))
    (isolated / "data" / "b" / "empty.jpg").write_bytes(b"")
    first = build(isolated / "data")
    (cache,) = (isolated / ".zoo-cache" / "image_folder").iterdir()
    damage(cache)
    decoded: list[Path] = []
    find_unreadable = zoo.find_unreadable
    monkeypatch.setattr(zoo, "find_unreadable", lambda p: decoded.extend(p) or find_unreadable(p))
    capsys.readouterr()

    again = build(isolated / "data")

    warned = [line for line in capsys.readouterr().err.splitlines() if "image checks" in line]
    assert len(decoded) == 11
    assert again.skipped == first.skipped == 1
    assert again.unreadable == first.unreadable
    if said is None:
        assert warned == []
    else:
        (line,) = warned
        assert line.startswith(f"warning: the image checks cached in {cache} were damaged ({said}")


def test_a_run_checks_again_what_a_previous_process_cached_and_another_damaged(
    zoo_cli, isolated: Path
):
    photos(isolated / "data" / "a", 10, (255, 0, 0))
    photos(isolated / "data" / "b", 10, (0, 0, 255))
    (isolated / "data" / "b" / "empty.jpg").write_bytes(b"")
    run = ["run", "image_folder", "small_cnn", "gap_sigmoid", *TINY_RUN]
    run += ["--set", f"dataset.path={isolated / 'data'}"]
    first = zoo_cli(*run).json()
    (cache,) = (isolated / ".zoo-cache" / "image_folder").iterdir()
    change_a_verdict(cache)

    again = run_zoo(*run)

    assert again.exit_code == 0, again.stderr
    (line,) = [line for line in again.stderr.splitlines() if "image checks" in line]
    assert line.startswith("warning: the image checks cached in")
    assert again.json()["history"] == first["history"]
