"""Input pipelines: raw dataset splits to resized, shuffled, batched tf.data."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

#: Resized images held for shuffling; 1,024 x 100 x 100 x 3 float32 is about 120 MB.
SHUFFLE_BUFFER = 1024


def resize_images(split: tf.data.Dataset, image_size: int) -> tf.data.Dataset:
    """``(uint8 image of any size, label)`` to ``(float32 [size, size, 3] in 0..255, label)``."""
    import tensorflow as tf

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
) -> tf.data.Dataset:
    """A split ready for training or evaluation.

    Shuffling happens after resizing, so the buffer holds small images; it reshuffles
    every epoch from ``seed``, so a seeded run sees the same order each time it runs.
    ``size``, when the dataset declares it, tells Keras how many steps an epoch has
    (and TensorFlow checks it).
    """
    import tensorflow as tf

    if size:
        split = split.apply(tf.data.experimental.assert_cardinality(size))
    split = resize_images(split, image_size)
    if shuffle:
        split = split.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    return split.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def steps(size: int | None, batch_size: int) -> int | None:
    """Batches per pass over ``size`` examples (the last one may be short)."""
    if not size:
        return None
    return -(-size // batch_size)
