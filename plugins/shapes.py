"""The ``shapes`` dataset: procedurally drawn shapes, offline and deterministic.

Every image is an RGB uint8 picture of varying size (like cats_vs_dogs) with one shape
on a random background: random colours, position, size and pixel noise. The class is
the shape. Shapes of different classes have about the same area, so a model has to
learn their outlines, not their size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import zoo

from . import split_fractions

if TYPE_CHECKING:
    import numpy as np

Mask = Callable[[Any, Any, float], Any]

#: Each shape as a mask of pixel offsets (dy, dx) from its centre, for a radius r.
SHAPES: dict[str, Mask] = {
    "circle": lambda dy, dx, r: dy**2 + dx**2 <= r**2,
    # Half-side 0.886 r gives a square the circle's area (sqrt(pi) / 2).
    "square": lambda dy, dx, r: (abs(dy) <= 0.886 * r) & (abs(dx) <= 0.886 * r),
    "triangle": lambda dy, dx, r: (dy <= 0.8 * r) & (abs(dx) <= (dy + 1.2 * r) * 0.6),
    "cross": lambda dy, dx, r: (
        ((abs(dy) <= r / 3) & (abs(dx) <= r)) | ((abs(dx) <= r / 3) & (abs(dy) <= r))
    ),
    "ring": lambda dy, dx, r: (dy**2 + dx**2 <= r**2) & (dy**2 + dx**2 >= (0.6 * r) ** 2),
    "diamond": lambda dy, dx, r: abs(dy) + abs(dx) <= 1.25 * r,
}

VERSION = "1.0.0"


def class_names(params: Mapping[str, Any]) -> list[str]:
    """The shapes asked for: names (``"circle,square"``) or a count (``"3"``)."""
    text = str(params["classes"]).strip()
    if text.isdigit():
        count = int(text)
        if not 2 <= count <= len(SHAPES):
            raise zoo.ZooError(
                f"shapes can draw 2 to {len(SHAPES)} classes, not {count}.",
                expected=f"a count from 2 to {len(SHAPES)}, or names from {', '.join(SHAPES)}",
                fix="for example --set dataset.classes=3 or --set dataset.classes=circle,ring",
                got=text,
            )
        return list(SHAPES)[:count]
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SHAPES]
    if unknown or len(set(names)) != len(names) or len(names) < 2:
        raise zoo.ZooError(
            "shapes needs two or more distinct shape names.",
            expected=f"names from: {', '.join(SHAPES)}",
            fix="for example --set dataset.classes=circle,square",
            got=text,
        )
    return names


def draw(
    rng: np.random.Generator, shape: str, min_size: int, max_size: int, noise: float
) -> np.ndarray:
    """One RGB uint8 image of ``shape`` on a random background."""
    import numpy as np

    height, width = rng.integers(min_size, max_size + 1, size=2)
    background = rng.uniform(0, 255, size=3)
    foreground = (background + rng.uniform(80, 175, size=3) * rng.choice([-1, 1], size=3)) % 256
    radius = rng.uniform(0.2, 0.35) * min(height, width)
    cy = rng.uniform(radius, height - radius)
    cx = rng.uniform(radius, width - radius)
    dy, dx = np.mgrid[0:height, 0:width]
    mask = SHAPES[shape](dy - cy, dx - cx, radius)
    image = np.where(mask[..., None], foreground, background)
    image = image + rng.normal(0, noise, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def generate(params: Mapping[str, Any]) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """All images and labels, balanced across classes, in a seeded random order."""
    import numpy as np

    names = class_names(params)
    rng = np.random.default_rng(params["seed"])
    count = params["num_images"]
    labels = rng.permutation(np.arange(count) % len(names))
    images = [
        draw(rng, names[label], params["min_size"], params["max_size"], params["noise"])
        for label in labels
    ]
    return images, labels, names


def split_bounds(count: int, fractions: Mapping[str, float]) -> dict[str, tuple[int, int]]:
    """Index ranges of train/validation/test, in the order the images are drawn (their
    labels are random): validation and test take their fractions, rounded down, and
    test the rest (80/10/10 by default).
    """
    train = int(count * (1 - fractions["validation"] - fractions["test"]))
    validation = train + int(count * fractions["validation"])
    return {"train": (0, train), "validation": (train, validation), "test": (validation, count)}


def build(params: Mapping[str, Any]) -> zoo.Splits:
    import numpy as np
    import tensorflow as tf

    if params["min_size"] > params["max_size"]:
        raise zoo.ZooError(
            "shapes: min_size is larger than max_size.",
            expected="min_size <= max_size",
            fix="for example --set dataset.min_size=64 --set dataset.max_size=160",
            got=(params["min_size"], params["max_size"]),
        )
    fractions = split_fractions.carved("shapes", params, own={})
    bounds = split_bounds(params["num_images"], fractions)
    _check_bounds(bounds, params["num_images"], fractions)
    images, labels, names = generate(params)
    signature = (
        tf.TensorSpec(shape=(None, None, 3), dtype=tf.uint8),
        tf.TensorSpec(shape=(), dtype=tf.int64),
    )

    def split(lo: int, hi: int) -> tf.data.Dataset:
        def items() -> Any:
            for i in range(lo, hi):
                yield images[i], labels[i]

        return tf.data.Dataset.from_generator(items, output_signature=signature)

    return zoo.Splits(
        train=split(*bounds["train"]),
        validation=split(*bounds["validation"]),
        test=split(*bounds["test"]),
        class_names=names,
        sizes={name: hi - lo for name, (lo, hi) in bounds.items()},
        version=VERSION,
        class_counts={
            name: np.bincount(labels[lo:hi], minlength=len(names)).tolist()
            for name, (lo, hi) in bounds.items()
        },
    )


def _check_bounds(
    bounds: Mapping[str, tuple[int, int]], count: int, fractions: Mapping[str, float]
) -> None:
    """Every split needs an image: shares are rounded down, so small pools can leave none."""
    empty = [split for split, (lo, hi) in bounds.items() if lo == hi]
    if empty:
        shares = ", ".join(
            f"{split} {split_fractions.percent(f)}" for split, f in fractions.items()
        )
        raise zoo.ZooError(
            f"shapes: the {empty[0]} split of {count} images is empty ({shares}, rounded down).",
            expected="at least one image in every split",
            fix="raise dataset.num_images, or change dataset.validation_fraction and "
            "dataset.test_fraction",
            got=count,
        )


PARAMS: Sequence[zoo.Param] = (
    # 5,000 images give the small CNN enough steps (125 an epoch at batch 32) to learn
    # circles vs squares in 7 epochs; with 2,000 it is still near chance.
    zoo.Param(
        "num_images",
        int,
        5000,
        "images in all, split 80/10/10 by default",
        minimum=10,
        maximum=10**6,
    ),
    zoo.Param("classes", str, "circle,square", f"shape names ({', '.join(SHAPES)}) or how many"),
    zoo.Param("seed", int, 0, "the same seed draws the same images", minimum=0),
    zoo.Param("min_size", int, 64, "smallest image side in pixels", minimum=8, maximum=4096),
    zoo.Param("max_size", int, 160, "largest image side in pixels", minimum=8, maximum=4096),
    zoo.Param("noise", float, 8.0, "standard deviation of pixel noise", minimum=0),
    *split_fractions.PARAMS,
)


@zoo.hookimpl
def register_datasets(register: Callable[[zoo.Dataset], None]) -> None:
    register(
        zoo.Dataset(
            name="shapes",
            description="Procedurally drawn shapes, offline and seeded; circles vs squares",
            params=PARAMS,
            build=build,
            class_names=class_names,
        )
    )
