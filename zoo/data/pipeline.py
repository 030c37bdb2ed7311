"""Input pipelines: raw dataset splits to resized, shuffled, augmented, batched tf.data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.runtime.loader import keras, tf, without_autotuning

if TYPE_CHECKING:
    from zoo.config.settings import RunSettings

#: Resized images held for shuffling; 1,024 x 100 x 100 x 3 float32 is about 120 MB.
SHUFFLE_BUFFER = 1024
#: Keras's name of each ``augment_flip`` choice.
_FLIPS = {"horizontal": "horizontal", "vertical": "vertical", "both": "horizontal_and_vertical"}


@dataclass(frozen=True)
class Augmentation:
    """Random changes to training images, made by Keras preprocessing layers.

    They run in the input pipeline, on the training split only: the model never
    contains them, so evaluation, prediction and the saved model see images as they are.

    Args:
        flip: ``none``, ``horizontal``, ``vertical`` or ``both``.
        rotation: Up to this fraction of a full turn, either way (``RandomRotation``).
        zoom: In or out by up to this fraction (``RandomZoom``).
        translation: Shifts by up to this fraction of each side (``RandomTranslation``).
        contrast: Contrast changed by up to this factor (``RandomContrast``).
    """

    flip: str = "none"
    rotation: float = 0.0
    zoom: float = 0.0
    translation: float = 0.0
    contrast: float = 0.0

    @classmethod
    def of(cls, settings: RunSettings) -> Augmentation | None:
        """The augmentation a run's settings ask for; ``None`` without ``--augment``."""
        if not settings.augment:
            return None
        return cls(
            flip=settings.augment_flip,
            rotation=settings.augment_rotation,
            zoom=settings.augment_zoom,
            translation=settings.augment_translation,
            contrast=settings.augment_contrast,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def layers(self, seed: int) -> list[keras.layers.Layer]:
        """The Keras layers, each seeded from ``seed``; a zero strength adds none."""
        random = keras.layers
        chosen: list[tuple[Any, dict[str, Any]]] = []
        if self.flip != "none":
            chosen.append((random.RandomFlip, {"mode": _FLIPS[self.flip]}))
        if self.rotation:
            chosen.append((random.RandomRotation, {"factor": self.rotation}))
        if self.zoom:
            chosen.append((random.RandomZoom, {"height_factor": self.zoom}))
        if self.translation:
            shift = self.translation
            chosen.append(
                (random.RandomTranslation, {"height_factor": shift, "width_factor": shift})
            )
        if self.contrast:
            chosen.append((random.RandomContrast, {"factor": self.contrast}))
        # float32 whatever the precision policy: pixels in 0..255 lose detail in float16.
        return [
            make(**kwargs, seed=seed * len(chosen) + index, dtype="float32")
            for index, (make, kwargs) in enumerate(chosen)
        ]

    def apply(self, batches: tf.data.Dataset, seed: int) -> tf.data.Dataset:
        """``batches`` (float32 0..255 images, labels) with each image changed at random.

        The same ``seed`` changes the same images the same way every time: the map runs
        in order, so the layers' random state advances identically (this is what lets a
        resumed run see the images an unbroken one saw).
        """
        layers = self.layers(seed)
        return batches.map(lambda images, labels: (_augment(layers, images), labels))

    def copies(self, batches: tf.data.Dataset, count: int) -> tf.data.Dataset:
        """Each image of ``batches`` followed by ``count`` augmented copies of it (copy
        ``k`` from seed ``k``), in place of the image: a batch of B images becomes B x
        ``count``, labels repeated to match. One pass over the data makes every copy, so
        they stay with their image whatever order the dataset gives.
        """
        made = [self.layers(seed) for seed in range(count)]

        def expand(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            stacked = tf.stack([_augment(layers, images) for layers in made], axis=1)
            return tf.reshape(stacked, (-1, *images.shape[1:])), tf.repeat(labels, count)

        return batches.map(expand)


def _augment(layers: Sequence[keras.layers.Layer], images: tf.Tensor) -> tf.Tensor:
    for layer in layers:
        images = layer(images, training=True)
    return images


def resize_images(split: tf.data.Dataset, image_size: int) -> tf.data.Dataset:
    """``(uint8 image of any size, label)`` to ``(float32 [size, size, 3] in 0..255, label)``."""

    def resize(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.image.resize(image, (image_size, image_size))
        image.set_shape((image_size, image_size, 3))
        return image, tf.cast(label, tf.int32)

    return split.map(resize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def batches(
    split: tf.data.Dataset,
    *,
    image_size: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    size: int | None = None,
    augment: Callable[[tf.data.Dataset], tf.data.Dataset] | None = None,
) -> tf.data.Dataset:
    """A split ready for training or evaluation.

    Shuffling happens after resizing, so the buffer holds small images; it reshuffles
    every epoch from ``seed``, so a seeded run sees the same order each time it runs.
    ``augment`` changes the batches (:meth:`Augmentation.apply` or
    :meth:`Augmentation.copies`; the training split only).
    ``size``, when the dataset declares it, tells Keras how many steps an epoch has
    (and TensorFlow checks it).
    """
    if size:
        split = split.apply(tf.data.experimental.assert_cardinality(size))
    split = resize_images(split, image_size)
    if shuffle:
        split = split.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    split = split.batch(batch_size)
    if augment is not None:
        split = augment(split)
    return without_autotuning(split.prefetch(tf.data.AUTOTUNE))


def steps(size: int | None, batch_size: int) -> int | None:
    """Batches per pass over ``size`` examples (the last one may be short)."""
    if not size:
        return None
    return -(-size // batch_size)


def labels_of(split: tf.data.Dataset) -> np.ndarray:
    """Every label of an unbatched ``(image, label)`` split, in order."""
    labels = without_autotuning(split.map(lambda image, label: label).batch(4096))
    return np.concatenate(list(labels.as_numpy_iterator()))


def balanced_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> tuple[float, ...]:
    """Each class's weight ``n / (classes x n_class)`` (scikit-learn's ``balanced``): every
    class then weighs as much in the loss, and when every class occurs the weights
    average 1 over the examples. A class without examples gets 0 (it never occurs)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    total = int(counts.sum())
    return tuple(total / (num_classes * int(c)) if c else 0.0 for c in counts)
