"""The images an export is checked and calibrated on.

Checking uses the run's test split, rebuilt through its dataset plugin as ``zoo evaluate``
rebuilds it; int8 calibration uses its training split, or a folder of images given with
``--calibration``. A sample is spread over the whole split (every k-th example), so a
split stored class by class still gives every class; images are resized as training
resized them (:func:`zoo.data.pipeline.resize_images`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError

if TYPE_CHECKING:
    import numpy as np

    from zoo.components import Splits
    from zoo.registry import Registry
    from zoo.results.predict import Trained


@dataclass
class Sample:
    """Images (float32 ``[n, size, size, 3]``, 0..255), their labels if known, and where
    they come from, in words (``"the run's test split: 200 of 466 images"``)."""

    images: np.ndarray
    labels: np.ndarray | None
    source: str

    def uint8(self) -> Iterator[np.ndarray]:
        """Each image as uint8 ``[size, size, 3]``: what calibration is given."""
        import numpy as np

        for image in self.images:
            yield np.clip(np.rint(image), 0, 255).astype(np.uint8)


def rebuilt_splits(registry: Registry, trained: Trained) -> Splits:
    """The run's dataset, rebuilt from its config.json by its plugin, as ``zoo evaluate``
    rebuilds it (:func:`zoo.results.evaluate.rebuilt_splits`).

    Raises:
        ZooError: the dataset cannot be rebuilt, or has other classes than the run.
    """
    from zoo.results.evaluate import rebuilt_splits as rebuilt

    fix = "check the run's dataset; calibrate on a folder with --calibration FOLDER"
    return rebuilt(registry, trained, fix)[0]


def from_split(splits: Splits, name: str, image_size: int, count: int) -> Sample:
    """Up to ``count`` examples of split ``name``, spread over it."""
    import numpy as np

    from zoo.data.pipeline import resize_images

    split = getattr(splits, name)
    total = splits.sizes.get(name)
    step = max(1, total // count) if total else 1
    picked = split.enumerate().filter(lambda i, _: i % step == 0).map(lambda _, example: example)
    images, labels = [], []
    for image, label in resize_images(picked.take(count), image_size).batch(64):
        images.append(image.numpy())
        labels.append(label.numpy())
    if not images:
        raise ZooError(
            f"the run's {name} split is empty: there is nothing to check the export on.",
            expected=f"a {name} split with images",
            fix="check the run's dataset (zoo info DATASET)",
            got=name,
        )
    found = np.concatenate(images)
    of = f" of {total}" if total else ""
    words = {"test": "test split", "train": "training split"}
    source = f"the run's {words[name]}: {len(found)}{of} images"
    return Sample(found, np.concatenate(labels), source)


def from_folder(folder: Path, image_size: int, count: int) -> Sample:
    """Up to ``count`` images of ``folder`` (recursively), spread over it, unlabelled.

    Unreadable files are skipped (:func:`zoo.data.images.read_image` decides).

    Raises:
        ZooError: not a folder, or no readable image in it.
    """
    import numpy as np

    from zoo.data.files import find_files

    if not folder.is_dir():
        raise ZooError(
            f"{folder} is not a folder.",
            expected="a folder of images to calibrate on (any layout, searched recursively)",
            fix="pass --calibration FOLDER, or leave it out to use the run's training images",
            got=str(folder),
        )
    files = find_files(folder).images
    step = max(1, len(files) // count)
    images = list(_read(files[::step][:count], image_size))
    if not images:
        raise ZooError(
            f"{folder} holds no readable image to calibrate on.",
            expected="JPEG, PNG, WebP, BMP or TIFF images",
            fix="pass another folder, or leave --calibration out",
            got=str(folder),
        )
    return Sample(np.stack(images), None, f"{folder}: {len(images)} of {len(files)} images")


def _read(files: list[Path], image_size: int) -> Iterator[Any]:
    import tensorflow as tf

    from zoo.data.images import UnreadableImage, read_image
    from zoo.data.limits import limits

    within = limits()
    for path in files:
        try:
            image = read_image(path, within)
        except UnreadableImage:
            continue
        yield tf.image.resize(image, (image_size, image_size)).numpy()
