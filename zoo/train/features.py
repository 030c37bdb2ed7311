"""Frozen-feature caching: run a frozen backbone once per split, train the head on the result.

A frozen backbone computes the same features for an image in every epoch, so zoo
computes them once, keeps them in memory under a budget (beyond it, reads them from
disk), and trains the head on them: every epoch after extraction costs only the head.
With augmentation, the training split's features are those of K augmented copies of
each image, extracted in one pass and stored together; each epoch draws one copy per
image.

Features are also kept on disk under a key that names everything they depend on (the
dataset, its parameters, version and fingerprint, the split, the backbone, its
parameters and a digest of its weights, the image size, the preprocessing and the
precision), so a later run with the same key reuses them and any change misses.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras
    import numpy as np
    import tensorflow as tf

    from zoo.train.distribute import Placement

FORMAT = 1
DEFAULT_MEMORY_BUDGET = 2 * 1024**3


def default_directory() -> Path:
    """``$ZOO_CACHE_DIR/features``, else ``$XDG_CACHE_HOME/zoo/features``, else ``~/.cache``."""
    base = os.environ.get("ZOO_CACHE_DIR")
    if base:
        return Path(base).expanduser() / "features"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "zoo" / "features"


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of every weight of ``model``: the identity of what it computes.

    Weights are taken in order of their paths: Keras lists trainable weights first, so
    unfreezing layers would otherwise change the digest of the same numbers.
    """
    digest = hashlib.sha256()
    for weight in sorted(model.weights, key=lambda w: w.path):
        value = weight.numpy()
        digest.update(f"{weight.path}:{value.dtype}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def cache_key(identity: Mapping[str, Any], split: str) -> str:
    """The key of one split's features; ``identity`` is JSON-serialisable."""
    text = json.dumps({"format": FORMAT, "split": split, **identity}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


@dataclass
class Features:
    """One split's features and labels, in memory or memory-mapped from disk.

    ``views``: ``None`` for one feature per example; K when the features of K augmented
    copies of each image were extracted (``features`` then has a second axis of K).
    """

    features: np.ndarray
    labels: np.ndarray
    source: str  # "extracted" or "cache"
    views: int | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one example's features."""
        return tuple(self.features.shape[1 if self.views is None else 2 :])

    def batches(self, batch_size: int, shuffle_seed: int | None = None) -> tf.data.Dataset:
        """Batches in a seeded random order (``shuffle_seed``), or in order (``None``).

        With views, each example's view is drawn from ``shuffle_seed`` too, so every
        epoch sees each image once, as one of its K augmented copies; in order, the
        first copy.
        """
        import numpy as np
        import tensorflow as tf

        count = len(self)

        def generate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            order, view_of = np.arange(count), np.zeros(count, dtype=np.int64)
            if shuffle_seed is not None:
                rng = np.random.default_rng(shuffle_seed)
                order = rng.permutation(count)
                if self.views is not None:
                    view_of = rng.integers(self.views, size=count)
            for start in range(0, count, batch_size):
                # Sorted indices read a memory-mapped file front to back.
                index = np.sort(order[start : start + batch_size])
                if self.views is None:
                    yield self.features[index], self.labels[index]
                else:
                    yield self.features[index, view_of[index]], self.labels[index]

        spec = (
            tf.TensorSpec((None, *self.shape), tf.float32),
            tf.TensorSpec((None,), tf.int32),
        )
        dataset = tf.data.Dataset.from_generator(generate, output_signature=spec)
        steps = -(-count // batch_size)
        return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


class FeatureCache:
    """Features by key: on disk under ``directory``, in memory up to ``memory_budget`` bytes.

    Args:
        directory: Where keyed features persist; ``None`` keeps nothing after the run
            (a temporary directory holds what does not fit in memory).
        memory_budget: Bytes of features kept in memory; the rest is memory-mapped.
    """

    def __init__(self, directory: Path | None, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> None:
        self.memory_budget = memory_budget
        self.directory = directory or Path(tempfile.mkdtemp(prefix="zoo-features-"))
        self._temporary = None if directory is not None else self.directory
        self._in_memory = 0

    def close(self) -> None:
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)

    def get(
        self,
        key: str,
        extract: Callable[[Path], None],
    ) -> Features:
        """The features stored under ``key``; ``extract(folder)`` writes them on a miss."""
        folder = self.directory / key
        source = "cache"
        if not (folder / "meta.json").is_file():
            self._write(folder, extract)
            source = "extracted"
        return self._load(folder, source)

    def _write(self, folder: Path, extract: Callable[[Path], None]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=self.directory))
        try:
            extract(partial)
            try:
                partial.rename(folder)
            except OSError:  # another run stored the same key meanwhile: keep theirs
                shutil.rmtree(partial, ignore_errors=True)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise

    def _load(self, folder: Path, source: str) -> Features:
        import numpy as np

        meta = json.loads((folder / "meta.json").read_text())
        shape = (meta["count"], *meta["shape"])
        size = int(np.prod(shape)) * 4
        mapped = np.memmap(folder / "features.f32", dtype=np.float32, mode="r", shape=shape)
        labels = np.fromfile(folder / "labels.i32", dtype=np.int32)
        views = meta.get("views")
        if self._in_memory + size <= self.memory_budget:
            self._in_memory += size
            return Features(np.array(mapped), labels, source, views)
        return Features(mapped, labels, source, views)


def extract_to(
    folder: Path,
    model: keras.Model,
    placement: Placement,
    dataset: tf.data.Dataset,
    report: Callable[[int], None] | None = None,
    views: int | None = None,
) -> None:
    """Run ``model`` over ``dataset`` and write features, labels and meta to ``folder``.

    Features are appended to disk batch by batch, so extraction needs little memory.
    With ``views`` K, each image of ``dataset`` comes K times in a row (its augmented
    copies, :meth:`zoo.data.Augmentation.copies`), and is stored as one example with K
    features: copies made in one pass stay with their image, whatever order the
    dataset gives its images in.
    """
    from zoo.train.loop import predict_batches

    count = 0
    shape: tuple[int, ...] = ()
    with (
        open(folder / "features.f32", "wb") as features,
        open(folder / "labels.i32", "wb") as labels,
    ):
        for step, (values, targets) in enumerate(predict_batches(model, placement, dataset)):
            if views is not None:
                values = values.reshape(-1, views, *values.shape[1:])
                targets = targets[::views]
            values.astype("float32").tofile(features)
            targets.astype("int32").tofile(labels)
            count += len(targets)
            shape = tuple(values.shape[1:])
            if report is not None:
                report(step)
        for f in (features, labels):
            f.flush()
            os.fsync(f.fileno())
    meta = {"format": FORMAT, "count": count, "shape": list(shape), "views": views}
    (folder / "meta.json").write_text(json.dumps(meta))
