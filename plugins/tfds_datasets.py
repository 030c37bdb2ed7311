"""TensorFlow Datasets: the tutorial's ``cats_vs_dogs``, and any TFDS image classifier.

``cats_vs_dogs`` is TFDS's copy of Microsoft's Kaggle archive
(``kagglecatsanddogs_5340.zip``, 787 MiB; TFDS drops its 1,738 corrupt images while
preparing it). It has only a ``train`` split, so zoo carves validation and test from it
with TFDS's split strings, ``validation_fraction`` and ``test_fraction`` of it (0.1
each by default: ``train[:80%]``, ``train[80%:90%]``, ``train[90%:]``; the tutorial's
``tfds.Split.TRAIN.subsplit`` no longer exists). ``tfds`` loads any TFDS image
classification dataset by name the same way, using the dataset's own ``validation`` and
``test`` splits when it has them (their fractions are then not used).

A dataset is prepared once into the TFDS data directory (``data_dir``, by default
``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``) and read from there afterwards. To
prepare it offline, put the files TFDS would download in a folder and pass it as
``manual_dir``: TFDS finds them there by name and checks their checksums. When neither
works, the error says both ways out.

Each dataset declares the files TFDS downloads for ``zoo fetch`` and ``zoo list``
(``tfds_files``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zoo

from . import split_fractions
from .tfds_files import data_dir, tfds_downloads

if TYPE_CHECKING:
    import tensorflow as tf
    import tensorflow_datasets as tfds

CATS_VS_DOGS = "cats_vs_dogs"
CATS_VS_DOGS_CLASSES = ("cat", "dog")
CATS_VS_DOGS_ARCHIVE = "kagglecatsanddogs_5340.zip"
#: The version TFDS prepares; its folder in the data directory means the archive is used.
CATS_VS_DOGS_VERSION = "4.0.1"
#: TFDS retries a failed download 10 times with exponential back-off (about three
#: minutes offline); 2 retries fail within a second and still ride out a hiccup.
DOWNLOAD_RETRIES = 2


def split_strings(fractions: Mapping[str, float]) -> dict[str, str]:
    """The TFDS split read for each of zoo's splits.

    Each split in ``fractions`` (those the dataset lacks) is the next share of ``train``
    (``{"validation": 0.1, "test": 0.1}``: ``train[:80%]``, ``train[80%:90%]``,
    ``train[90%:]``); the others are the dataset's own ``validation`` and ``test``.
    """
    start = 1 - sum(fractions.values())
    strings = {"train": f"train[:{split_fractions.percent(start)}]" if fractions else "train"}
    for split in ("validation", "test"):
        if split not in fractions:
            strings[split] = split
            continue
        end = start + fractions[split]
        last = split == list(fractions)[-1]  # to the end, whatever the rounding
        strings[split] = f"train[{split_fractions.percent(start)}:" + (
            "]" if last else f"{split_fractions.percent(end)}]"
        )
        start = end
    return strings


def load(name: str, params: Mapping[str, Any]) -> zoo.Splits:
    """Prepare the TFDS dataset ``name`` if needed, and read its three splits."""
    builder = _builder(name, params["data_dir"])
    label_key = _label_key(builder)
    _prepare(builder, _manual_dir(name, params["manual_dir"]))
    available = set(builder.info.splits.keys())
    if available and "train" not in available:
        raise zoo.ZooError(
            f"{name} has no 'train' split.",
            expected="a TFDS dataset with a 'train' split (and optionally validation, test)",
            fix="choose another dataset; `tfds.builder(NAME).info.splits` lists a dataset's splits",
            got=sorted(available),
        )
    own = {
        split: f"TFDS's '{split}' split" for split in ("validation", "test") if split in available
    }
    strings = split_strings(split_fractions.carved(name, params, own))
    datasets = {split: _read(builder, s) for split, s in strings.items()}
    return zoo.Splits(
        train=datasets["train"],
        validation=datasets["validation"],
        test=datasets["test"],
        class_names=list(builder.info.features[label_key].names),
        sizes={split: _size(builder, ds, strings[split]) for split, ds in datasets.items()},
        version=str(builder.info.version),
        fingerprint=_fingerprint(builder, strings),
    )


def _builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=str(Path(data_dir).expanduser()) if data_dir else None)
    except tfds.core.registered.DatasetNotFoundError as exc:
        raise zoo.ZooError(
            f"TensorFlow Datasets has no dataset '{name}'.",
            expected="a TFDS dataset name, for example cats_vs_dogs, cifar10 or tf_flowers",
            fix="pass one with --set dataset.name=NAME; the TFDS catalog lists them all: "
            "https://www.tensorflow.org/datasets/catalog/overview",
            got=name,
        ) from exc


def _label_key(builder: tfds.core.DatasetBuilder) -> str:
    """The label feature's name; the dataset must classify images."""
    import tensorflow_datasets as tfds

    info = builder.info
    keys = info.supervised_keys
    if (
        not keys
        or len(keys) != 2
        or not isinstance(info.features[keys[0]], tfds.features.Image)
        or not isinstance(info.features[keys[1]], tfds.features.ClassLabel)
    ):
        raise zoo.ZooError(
            f"{info.name} is not an image classification dataset.",
            expected="a TFDS dataset whose supervised keys are an Image and a ClassLabel",
            fix="choose an image classification dataset, for example cifar10 or tf_flowers",
            got=keys,
        )
    return keys[1]


def _manual_dir(name: str, value: str | None) -> Path | None:
    if not value:
        return None
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise zoo.ZooError(
            f"{name}: the manual directory {folder} does not exist.",
            expected="a folder holding the files TFDS would download for the dataset",
            fix="create it and put the files there, or leave dataset.manual_dir unset",
            got=value,
        )
    return folder


def _prepare(builder: tfds.core.DatasetBuilder, manual_dir: Path | None) -> None:
    """Download (or take from ``manual_dir``) and prepare the dataset, unless done before."""
    from urllib.error import URLError

    import requests
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

    if builder.is_prepared():
        return
    config = tfds.download.DownloadConfig(manual_dir=str(manual_dir) if manual_dir else None)
    try:
        with _tfds_downloads():
            builder.download_and_prepare(download_config=config)
    except NonMatchingChecksumError as exc:
        raise _wrong_checksum(builder, exc) from exc
    except (tfds.download.DownloadError, requests.RequestException, URLError, TimeoutError) as exc:
        raise _not_downloaded(builder, manual_dir, exc) from exc


@contextlib.contextmanager
def _tfds_downloads() -> Iterator[None]:
    """Fewer retries (see ``DOWNLOAD_RETRIES``); TFDS's messages kept off stdout (``--json``)."""
    from unittest import mock

    from tensorflow_datasets.core.download import downloader

    with (
        mock.patch.object(downloader, "MAX_RETRIES", DOWNLOAD_RETRIES),
        contextlib.redirect_stdout(sys.stderr),
    ):
        yield


def _files(builder: tfds.core.DatasetBuilder) -> dict[str, Any]:
    """The files TFDS downloads for the dataset, by URL (empty if TFDS does not list them)."""
    try:
        return dict(builder.url_infos or {})
    except Exception:  # datasets without a checksums file raise here; only messages use it
        return {}


def _not_downloaded(
    builder: tfds.core.DatasetBuilder, manual_dir: Path | None, exc: Exception
) -> zoo.ZooError:
    info = builder.info
    files = _files(builder)
    names = ", ".join(f.filename or url.rsplit("/", 1)[-1] for url, f in files.items())
    names = names or "the files its download instructions name"
    where = f" (not found in {manual_dir})" if manual_dir else ""
    urls = "; ".join(files) or info.homepage or "its homepage"
    return zoo.ZooError(
        f"{info.name}: could not download {names}{where}: {_reason(exc)}.",
        expected=f"the prepared dataset {info.full_name} in the TFDS data directory "
        f"{Path(builder.data_dir).parent.parent}, or {names} in a manual directory",
        fix=f"either download {urls} on a machine with internet access, put it in a folder "
        "and pass --set dataset.manual_dir=FOLDER (TFDS checks its checksum and prepares the "
        f"dataset once); or pass --set dataset.data_dir=DIR for a TFDS data directory that "
        f"already holds {info.full_name} (prepared elsewhere with `tfds build {info.name}`)",
    )


def _wrong_checksum(builder: tfds.core.DatasetBuilder, exc: Exception) -> zoo.ZooError:
    info = builder.info
    detail = " ".join(line.strip() for line in str(exc).splitlines()[:3])
    return zoo.ZooError(
        f"{info.name}: a file in the manual directory is not the one TFDS expects "
        f"(wrong checksum): {detail}",
        expected="the file exactly as published (TFDS compares its size and SHA-256)",
        fix="download it again (a partial or re-packed archive has another checksum), or "
        "leave dataset.manual_dir unset to let TFDS download it",
    )


def _reason(exc: BaseException) -> str:
    """The innermost cause: ``Connection refused``, ``Name or service not known``..."""
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        exc, cause = cause, cause.__cause__ or cause.__context__
    text = str(exc.args[-1] if isinstance(exc, OSError) and exc.args else exc)
    return text.strip().rstrip(".") or type(exc).__name__


def _read(builder: tfds.core.DatasetBuilder, split: str) -> tf.data.Dataset:
    """``(uint8 RGB image, label)`` pairs of ``split``."""
    import tensorflow as tf

    def rgb(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if image.dtype != tf.uint8:
            image = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
        if image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        return image[..., :3], label  # alpha dropped

    dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    return dataset.map(rgb, num_parallel_calls=tf.data.AUTOTUNE)


def _size(builder: tfds.core.DatasetBuilder, dataset: tf.data.Dataset, split: str) -> int:
    known = int(dataset.cardinality())
    return known if known >= 0 else builder.info.splits[split].num_examples


def _fingerprint(builder: tfds.core.DatasetBuilder, strings: Mapping[str, str]) -> str:
    """A digest of the dataset's name, version, folder, metadata and the splits read."""
    digest = hashlib.sha256(f"{builder.info.full_name}\n{builder.data_dir}\n".encode())
    digest.update(repr(sorted(strings.items())).encode())
    info_file = Path(builder.data_dir) / "dataset_info.json"
    if info_file.is_file():  # it records every shard's length and the download checksums
        digest.update(info_file.read_bytes())
    return f"sha256:{digest.hexdigest()[:16]}"


def cats_vs_dogs_downloads(params: Mapping[str, Any]) -> list[zoo.Download]:
    """The Kaggle archive, unless TFDS has prepared the dataset from it already."""
    prepared = data_dir(params) / CATS_VS_DOGS / CATS_VS_DOGS_VERSION / "dataset_info.json"
    return tfds_downloads(CATS_VS_DOGS, params, prepared)


def cats_vs_dogs_classes(params: Mapping[str, Any]) -> list[str]:
    return list(CATS_VS_DOGS_CLASSES)


def tfds_classes(params: Mapping[str, Any]) -> list[str]:
    """The label names from the dataset's metadata, without downloading anything."""
    builder = _builder(params["name"], params["data_dir"])
    return list(builder.info.features[_label_key(builder)].names)


def _folder_params(archive: str) -> tuple[zoo.Param, ...]:
    """Where the dataset is, and the fractions of ``train`` carved for missing splits."""
    return (
        zoo.Param(
            "data_dir",
            str,
            None,
            "the TFDS data directory: prepared datasets are read from it and written to it "
            "(default: TFDS's, ~/tensorflow_datasets or $TFDS_DATA_DIR)",
        ),
        zoo.Param(
            "manual_dir",
            str,
            None,
            f"a folder holding {archive} already downloaded; TFDS checks its checksum "
            "and prepares the dataset from it instead of downloading",
        ),
        *split_fractions.PARAMS,
    )


@zoo.hookimpl
def register_datasets(register: Callable[[zoo.Dataset], None]) -> None:
    register(
        zoo.Dataset(
            name=CATS_VS_DOGS,
            description="The tutorial's cats vs dogs photos (TFDS), split 80/10/10 by default",
            params=_folder_params(CATS_VS_DOGS_ARCHIVE),
            build=functools.partial(load, CATS_VS_DOGS),
            class_names=cats_vs_dogs_classes,
            downloads=cats_vs_dogs_downloads,
        )
    )
    register(
        zoo.Dataset(
            name="tfds",
            description="Any TFDS image classification dataset by name; its own splits or 80/10/10",
            params=(
                zoo.Param("name", str, required=True, help="the TFDS name, e.g. tf_flowers"),
                *_folder_params("the files TFDS downloads for it"),
            ),
            build=lambda params: load(params["name"], params),
            class_names=tfds_classes,
            downloads=lambda params: tfds_downloads(params["name"], params),
        )
    )
