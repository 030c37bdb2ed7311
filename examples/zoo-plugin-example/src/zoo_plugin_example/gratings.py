"""The ``gratings`` dataset: striped patterns whose class is their orientation.

Each image is a sinusoidal grating of random size, wavelength, phase and colours, with
pixel noise; the class is the direction of the stripes (horizontal, vertical,
diagonal, antidiagonal), jittered by a few degrees. Unlike zoo's ``shapes``, nothing
is in the middle of the picture: a model has to read texture across the whole image.

numpy and TensorFlow are imported inside the functions that draw and wrap images, so
``zoo list`` stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import zoo

if TYPE_CHECKING:
    import numpy as np

#: Class names and the angle of their stripes' normal, in degrees.
ORIENTATIONS = {"horizontal": 90.0, "vertical": 0.0, "diagonal": 45.0, "antidiagonal": 135.0}
VERSION = "1.0.0"

PARAMS: Sequence[zoo.Param] = (
    zoo.Param("num_images", int, 2000, "images in all, split 80/10/10", minimum=10),
    zoo.Param(
        "classes",
        int,
        2,
        f"how many orientations, in this order: {', '.join(ORIENTATIONS)}",
        choices=(2, 3, 4),
    ),
    zoo.Param("seed", int, 0, "the same seed draws the same images", minimum=0),
    zoo.Param("min_size", int, 48, "smallest image side in pixels", minimum=8),
    zoo.Param("max_size", int, 128, "largest image side in pixels", minimum=8),
    zoo.Param("noise", float, 10.0, "standard deviation of pixel noise", minimum=0),
    zoo.Param("jitter", float, 10.0, "random tilt of the stripes, in degrees", minimum=0),
)


def class_names(params: Mapping[str, Any]) -> list[str]:
    """The orientations asked for; cheap, so zoo checks the head before drawing."""
    return list(ORIENTATIONS)[: params["classes"]]


def draw(rng: np.random.Generator, angle: float, params: Mapping[str, Any]) -> np.ndarray:
    """One RGB uint8 grating whose stripes' normal points at ``angle`` degrees."""
    import numpy as np

    height, width = rng.integers(params["min_size"], params["max_size"] + 1, size=2)
    theta = math.radians(angle + rng.uniform(-params["jitter"], params["jitter"]))
    # At least 4 pixels per period, so even the smallest image shows clean stripes.
    wavelength = rng.uniform(4.0, max(5.0, min(height, width) / 3))
    dy, dx = np.mgrid[0:height, 0:width]
    phase = (dx * math.cos(theta) + dy * math.sin(theta)) / wavelength * 2 * math.pi
    wave = (np.sin(phase + rng.uniform(0, 2 * math.pi)) + 1) / 2
    dark, light = rng.uniform(0, 100, size=3), rng.uniform(155, 255, size=3)
    image = dark + wave[..., None] * (light - dark)
    image = image + rng.normal(0, params["noise"], size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def generate(params: Mapping[str, Any]) -> tuple[list[np.ndarray], np.ndarray]:
    """All images and labels, balanced across classes, in a seeded random order."""
    import numpy as np

    angles = [ORIENTATIONS[name] for name in class_names(params)]
    rng = np.random.default_rng(params["seed"])
    labels = rng.permutation(np.arange(params["num_images"]) % len(angles))
    return [draw(rng, angles[label], params) for label in labels], labels


def build(params: Mapping[str, Any]) -> zoo.Splits:
    """Draw the images and split them 80/10/10 into unbatched tf.data datasets."""
    import tensorflow as tf

    if params["min_size"] > params["max_size"]:
        raise zoo.ZooError(
            "gratings: min_size is larger than max_size.",
            expected="min_size <= max_size",
            fix="for example --set dataset.min_size=32 --set dataset.max_size=96",
            got=(params["min_size"], params["max_size"]),
        )
    images, labels = generate(params)
    count = len(images)
    train, validation = int(count * 0.8), int(count * 0.9)
    bounds = {"train": (0, train), "validation": (train, validation), "test": (validation, count)}
    signature = (
        tf.TensorSpec(shape=(None, None, 3), dtype=tf.uint8),
        tf.TensorSpec(shape=(), dtype=tf.int64),
    )

    def split(lo: int, hi: int) -> tf.data.Dataset:
        return tf.data.Dataset.from_generator(
            lambda: ((images[i], labels[i]) for i in range(lo, hi)), output_signature=signature
        )

    return zoo.Splits(
        **{name: split(lo, hi) for name, (lo, hi) in bounds.items()},
        class_names=class_names(params),
        sizes={name: hi - lo for name, (lo, hi) in bounds.items()},
        version=VERSION,
    )


DATASET = zoo.Dataset(
    name="gratings",
    description="Sinusoidal stripes at random scale and colour; the class is their orientation",
    params=PARAMS,
    build=build,
    class_names=class_names,
)
