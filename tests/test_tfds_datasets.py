"""TFDS datasets offline: ``cats_vs_dogs`` through ``tfds.testing.mock_data``, a tiny
dataset prepared for real, and every way a missing download can fail.

Nothing here downloads: ``offline`` sends HTTP(S) to a closed local port, so TFDS's real
download code fails at once, as it does on a machine without internet.
"""

from __future__ import annotations

import importlib
import json
import socket
from pathlib import Path

import numpy as np
import pytest

import zoo

zoo.load_registry(zoo.LoadOptions(builtins_only=True))  # imports zoo.builtins.*
TFDS_PLUGIN = importlib.import_module("zoo.builtins.tfds_datasets")
TINY_RUN = ["--epochs", "1", "--image-size", "32", "--batch-size", "8", "--json"]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP(S) goes to a local port nothing listens on (requests reads these variables)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, proxy)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mock_tfds():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=16):
        yield


def params(**values: str | None) -> dict[str, str | None]:
    return {"data_dir": None, "manual_dir": None, **values}


# Splits ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fractions", "expected"),
    [
        ({"validation": 0.1, "test": 0.1}, ["train[:80%]", "train[80%:90%]", "train[90%:]"]),
        ({"test": 0.1}, ["train[:90%]", "validation", "train[90%:]"]),
        ({"validation": 0.1}, ["train[:90%]", "train[90%:]", "test"]),
        ({}, ["train", "validation", "test"]),
        ({"validation": 0.2, "test": 0.3}, ["train[:50%]", "train[50%:70%]", "train[70%:]"]),
        (
            {"validation": 0.15, "test": 0.125},
            ["train[:72.5%]", "train[72.5%:87.5%]", "train[87.5%:]"],
        ),
    ],
)
def test_split_strings_carve_the_missing_splits_from_train_and_keep_the_datasets_own(
    fractions, expected
):
    strings = TFDS_PLUGIN.split_strings(fractions)

    assert [strings["train"], strings["validation"], strings["test"]] == expected


# cats_vs_dogs ----------------------------------------------------------------------------


def test_cats_vs_dogs_yields_rgb_uint8_images_labelled_cat_and_dog(mock_tfds):
    splits = TFDS_PLUGIN.load("cats_vs_dogs", params())

    assert list(splits.class_names) == ["cat", "dog"]
    assert splits.version == "4.0.1" and splits.fingerprint.startswith("sha256:")
    assert splits.sizes == {"train": 16, "validation": 16, "test": 16}  # mocked: 16 each
    for image, label in splits.train.take(4).as_numpy_iterator():
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert label in (0, 1)


def test_cats_vs_dogs_trains_end_to_end(zoo_cli, mock_tfds, isolated: Path):
    result = zoo_cli("run", "cats_vs_dogs", "small_cnn", "gap_sigmoid", *TINY_RUN)

    assert result.exit_code == 0, result.stderr
    run_dir = Path(result.json()["run_dir"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["dataset"]["class_names"] == ["cat", "dog"]
    assert metrics["dataset"]["version"] == "4.0.1"
    assert metrics["dataset"]["sizes"]["train"] == 16


def test_offline_without_data_the_error_names_both_ways_out(zoo_cli, offline, isolated: Path):
    data_dir = isolated / "tfds"

    result = zoo_cli(
        "run", "cats_vs_dogs", "small_cnn", "gap_sigmoid", *TINY_RUN,
        "--set", f"dataset.data_dir={data_dir}",
    )  # fmt: skip

    assert result.exit_code == 2
    for text in (
        "cats_vs_dogs: could not download kagglecatsanddogs_5340.zip",
        "Connection refused",  # the closed port answered, not the internet
        "--set dataset.manual_dir=FOLDER",
        "--set dataset.data_dir=DIR",
        "cats_vs_dogs/4.0.1",
        str(data_dir),
    ):
        assert text in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_wrong_archive_in_the_manual_dir_reaches_tfdss_checksum_check(
    zoo_cli, offline, isolated: Path
):
    manual = isolated / "downloads"
    manual.mkdir()
    (manual / "kagglecatsanddogs_5340.zip").write_bytes(b"PK\x03\x04 not the real archive")

    result = zoo_cli(
        "run", "cats_vs_dogs", "small_cnn", "gap_sigmoid", *TINY_RUN,
        "--set", f"dataset.data_dir={isolated / 'tfds'}", "--set", f"dataset.manual_dir={manual}",
    )  # fmt: skip

    assert result.exit_code == 2
    assert "is not the one TFDS expects (wrong checksum)" in result.stderr
    assert str(manual / "kagglecatsanddogs_5340.zip") in result.stderr
    assert "could not download" not in result.stderr  # TFDS took the file, not the network


def test_the_declared_archive_is_the_one_tfds_records(isolated: Path):
    import tensorflow_datasets as tfds

    builder = tfds.builder("cats_vs_dogs", data_dir=str(isolated / "tfds"))
    ((url, info),) = builder.url_infos.items()

    (archive,) = TFDS_PLUGIN.cats_vs_dogs_downloads(params(data_dir=str(isolated / "tfds")))

    assert (archive.url, archive.size, archive.sha256) == (url, info.size, info.checksum)
    assert archive.path == isolated / "tfds" / "downloads" / "manual" / info.filename
    assert archive.prepared == Path(builder.data_dir) / "dataset_info.json"


def test_an_archive_where_zoo_fetch_puts_it_reaches_tfdss_checksum_check(
    zoo_cli, offline, isolated: Path
):
    """No manual_dir given: TFDS looks in its default one, where the declaration points."""
    (archive,) = TFDS_PLUGIN.cats_vs_dogs_downloads(params(data_dir=str(isolated / "tfds")))
    archive.path.parent.mkdir(parents=True)
    archive.path.write_bytes(b"PK\x03\x04 not the real archive")

    result = zoo_cli(
        "run", "cats_vs_dogs", "small_cnn", "gap_sigmoid", *TINY_RUN,
        "--set", f"dataset.data_dir={isolated / 'tfds'}",
    )  # fmt: skip

    assert result.exit_code == 2
    assert "is not the one TFDS expects (wrong checksum)" in result.stderr
    assert "could not download" not in result.stderr  # TFDS took the file, not the network


def test_a_prepared_dataset_is_ready_offline_without_its_archive(
    zoo_cli, isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TFDS_DATA_DIR", str(isolated / "tfds"))
    ready = {d["name"]: d["offline"]["ready"] for d in zoo_cli("list", "--json").json()["datasets"]}
    assert ready["cats_vs_dogs"] is False
    (isolated / "tfds" / "cats_vs_dogs" / "4.0.1").mkdir(parents=True)
    (isolated / "tfds" / "cats_vs_dogs" / "4.0.1" / "dataset_info.json").write_text("{}")

    result = zoo_cli("fetch", "cats_vs_dogs", "--json")

    assert result.exit_code == 0 and result.json()[0]["status"] == "prepared"


def test_a_missing_manual_dir_is_a_clear_error(zoo_cli, isolated: Path):
    result = zoo_cli(
        "run", "cats_vs_dogs", "small_cnn", "gap_sigmoid", *TINY_RUN,
        "--set", f"dataset.manual_dir={isolated / 'nowhere'}",
    )  # fmt: skip

    assert result.exit_code == 2
    assert "the manual directory" in result.stderr and "does not exist" in result.stderr


def test_the_tutorial_transfer_dry_run_needs_no_data(zoo_cli, offline):
    """The counts of the tutorial's ResNet50 + GAP + sigmoid at 100x100 (random weights)."""
    result = zoo_cli(
        "run", "--recipe", "tutorial_transfer", "--dry-run", "--json",
        "--set", "backbone.weights=none",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert result.json()["parameters"] == {
        "total": 23_589_761,
        "trainable": 2_049,
        "non_trainable": 23_587_712,
    }


# tfds: any image classification dataset -------------------------------------------------


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TFDS data directory holding ``zoo_tiny_pictures``, prepared for real (no download):
    greyscale 12x10 pictures in three classes, 30 for train and 9 for test."""
    import tensorflow_datasets as tfds

    class ZooTinyPictures(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.2.0")

        def _info(self) -> tfds.core.DatasetInfo:
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "picture": tfds.features.Image(shape=(12, 10, 1)),
                        "kind": tfds.features.ClassLabel(names=["dot", "bar", "box"]),
                    }
                ),
                supervised_keys=("picture", "kind"),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(30), "test": self._generate_examples(9)}

        def _generate_examples(self, count: int):
            for i in range(count):
                yield i, {"picture": np.full((12, 10, 1), i * 8, np.uint8), "kind": i % 3}

    data_dir = tmp_path_factory.mktemp("tfds")
    ZooTinyPictures(data_dir=str(data_dir)).download_and_prepare()
    return data_dir


def test_tfds_reads_a_prepared_dataset_with_its_own_test_split(tiny_tfds: Path):
    splits = TFDS_PLUGIN.load("zoo_tiny_pictures", params(data_dir=str(tiny_tfds)))

    assert list(splits.class_names) == ["dot", "bar", "box"]
    assert splits.sizes == {"train": 27, "validation": 3, "test": 9}  # train[:90%], train[90%:]
    assert splits.version == "1.2.0"
    image, _ = next(splits.test.as_numpy_iterator())
    assert image.shape == (12, 10, 3) and image.dtype == np.uint8  # grey became RGB
    assert (image == image[..., :1]).all()


def test_tfds_carves_validation_at_its_fraction_and_says_test_fraction_is_unused(
    tiny_tfds: Path, capsys: pytest.CaptureFixture[str]
):
    values = params(data_dir=str(tiny_tfds), validation_fraction=0.2, test_fraction=0.3)

    splits = TFDS_PLUGIN.load("zoo_tiny_pictures", values)

    assert splits.sizes == {"train": 24, "validation": 6, "test": 9}  # test: its own 9
    assert "test_fraction=0.3 is not used: the test split is the data's own" in " ".join(
        capsys.readouterr().err.split()
    )
    default = TFDS_PLUGIN.load("zoo_tiny_pictures", params(data_dir=str(tiny_tfds)))
    assert default.fingerprint != splits.fingerprint


def test_tfds_trains_on_a_dataset_by_name(zoo_cli, tiny_tfds: Path):
    result = zoo_cli(
        "run", "tfds", "small_cnn", "gap_softmax", *TINY_RUN,
        "--set", "dataset.name=zoo_tiny_pictures", "--set", f"dataset.data_dir={tiny_tfds}",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    metrics = json.loads((Path(result.json()["run_dir"]) / "metrics.json").read_text())
    assert metrics["dataset"]["sizes"] == {"train": 27, "validation": 3, "test": 9}


def test_tfds_class_names_come_from_metadata_alone(tiny_tfds: Path, isolated: Path):
    names = TFDS_PLUGIN.tfds_classes(params(name="zoo_tiny_pictures", data_dir=str(isolated)))

    assert names == ["dot", "bar", "box"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_such_dataset_here", "TensorFlow Datasets has no dataset 'no_such_dataset_here'"),
        ("glue", "is not an image classification dataset"),
    ],
)
def test_tfds_rejects_what_it_cannot_use(name: str, message: str):
    with pytest.raises(zoo.ZooError, match=message):
        TFDS_PLUGIN.tfds_classes(params(name=name))
