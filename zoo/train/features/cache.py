"""Frozen-feature caching: run a frozen backbone once per split, train the head on the result.

A frozen backbone computes the same features for an image in every epoch, so zoo
computes them once, keeps them in memory under a budget (beyond it, reads them from
disk), and trains the head on them: every epoch after extraction costs only the head.
With augmentation, the training split's features are those of K augmented copies of
each image, extracted in one pass and stored together; each epoch draws one copy per
image.

Features are also kept on disk under a key that names everything they depend on (the
dataset, its parameters, version and fingerprint, the split, the backbone, its
parameters and a digest of its weights, the image size, the preprocessing, the
precision, the runtime that computed them and its precision, and the head's pooling
when they are cached pooled), so a later run with the same key reuses them and any
change misses. The cache folder keeps to a size, least recently used entries first,
never removing one in use (:mod:`zoo.train.features.store`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from zoo.storage import atomic, disk_full
from zoo.train.features import store

if TYPE_CHECKING:
    import keras
    import numpy as np
    import tensorflow as tf

#: Part of every key: 2 added the files' sizes and CRC-32s to meta.json.
FORMAT = 2
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

    The on-disk format, the locks that keep entries in use from being pruned, and
    pruning are :mod:`zoo.train.features.store`'s. Entries this cache opens stay leased until
    :meth:`close`.

    Args:
        directory: Where keyed features persist; ``None`` keeps nothing after the run
            (a temporary directory holds what does not fit in memory).
        memory_budget: Bytes of features kept in memory; the rest is memory-mapped.
        max_size: Bytes the directory may hold: after writing an entry, the least
            recently used ones not in use are removed until the rest fit
            (``None``: no limit).
        warn: Told ``(folder, problem)`` of a damaged entry it removed before
            extracting it again.
    """

    def __init__(
        self,
        directory: Path | None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        max_size: int | None = None,
        warn: Callable[[Path, str], None] | None = None,
    ) -> None:
        self.memory_budget = memory_budget
        self.max_size = max_size
        self.directory = directory or Path(tempfile.mkdtemp(prefix="zoo-features-"))
        self._temporary = None if directory is not None else self.directory
        self.warn = warn
        self._in_memory = 0
        self._leases: list[store.Lease] = []
        self._private: list[Path] = []

    def close(self) -> None:
        for lease in self._leases:
            lease.release()
        self._leases.clear()
        for folder in self._private:
            shutil.rmtree(folder, ignore_errors=True)
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)

    def has(self, key: str) -> bool:
        """Whether ``key`` is stored (it may still be pruned before :meth:`get`)."""
        return (self.directory / key / store.META).is_file()

    def get(
        self,
        key: str,
        extract: Callable[[Path], Mapping[str, Any]],
        about: Mapping[str, Any] | None = None,
    ) -> tuple[Features, store.Pruned | None]:
        """The features stored under ``key``; on a miss ``extract(folder)`` writes them
        and returns their meta (count, shape, views, files), ``about`` is kept with them,
        and the cache is pruned to its size: what pruning did comes second (``None`` when
        nothing was written). A damaged entry is removed, said (``warn``), and extracted
        again."""
        folder = self.directory / key
        if self._intact(folder, store.lease(folder)):
            return self._load(folder, "cache"), None
        used = self._write(folder, extract, about or {})
        pruned = None
        if self.max_size is not None and self._temporary is None:
            pruned = store.prune(self.directory, self.max_size)
        return self._load(used, "extracted"), pruned

    def _intact(self, folder: Path, held: store.Lease | None) -> bool:
        """Whether the leased entry in ``folder`` is whole (then it stays leased); a
        damaged one is released, said, and removed unless another process uses it (that
        process finds the damage too)."""
        if held is None:  # no entry, unless a folder lost its meta.json
            if not folder.is_dir():
                return False
            damaged = "meta.json is missing"
        else:
            found = store.damage(folder, checksums=True)
            if found is None:
                self._leases.append(held)
                return True
            held.release()
            damaged = found
        store.remove(folder)
        if self.warn is not None:
            self.warn(folder, damaged)
        return False

    def _write(
        self, folder: Path, extract: Callable[[Path], Mapping[str, Any]], about: Mapping[str, Any]
    ) -> Path:
        """Extract into a folder of our own and rename it to ``folder``; return where
        the features are: ``folder``, or ours, kept for this run alone, when ``folder``
        is taken by a damaged entry another process still uses."""
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=self.directory))
        held = store.lease(partial)  # no pruner removes it while written, nor after
        assert held is not None, "a folder just made has no pruner yet"
        try:
            meta = {"format": FORMAT, **extract(partial), "about": dict(about)}
            with disk_full.writing("the cached features' meta.json", partial, lambda: 4096):
                (partial / store.META).write_text(json.dumps(meta))
            renamed = _rename(partial, folder)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            held.release()
            raise
        if renamed:
            self._leases.append(held)  # the lease follows the folder
            return folder
        # Another run stored the same key meanwhile: its entry is used when intact.
        if self._intact(folder, store.lease(folder)):
            shutil.rmtree(partial, ignore_errors=True)
            held.release()
            return folder
        self._leases.append(held)
        self._private.append(partial)
        return partial

    def _load(self, folder: Path, source: str) -> Features:
        import numpy as np

        meta = json.loads((folder / store.META).read_text())
        shape = (meta["count"], *meta["shape"])
        size = int(np.prod(shape)) * 4
        mapped = np.memmap(folder / store.FEATURES, dtype=np.float32, mode="r", shape=shape)
        labels = np.fromfile(folder / store.LABELS, dtype=np.int32)
        views = meta.get("views")
        if self._in_memory + size <= self.memory_budget:
            self._in_memory += size
            return Features(np.array(mapped), labels, source, views)
        return Features(mapped, labels, source, views)


def _rename(partial: Path, folder: Path) -> bool:
    """Move a finished entry into place (its lease follows); ``False`` if one is there."""
    try:
        atomic.publish(partial, folder, replace=False)
    except FileExistsError:
        return False
    return True


def extract_to(
    folder: Path,
    predicted: Iterable[tuple[np.ndarray, np.ndarray]],
    report: Callable[[int], None] | None = None,
    views: int | None = None,
    total: int | None = None,
) -> dict[str, Any]:
    """Write the ``predicted`` features and labels to ``folder``; return their meta.

    ``predicted`` gives ``(features, labels)`` batch by batch (a runtime running the
    features model over a dataset, :mod:`zoo.runtime.runners`); they are appended to disk as
    they come, so extraction needs little memory, and their CRC-32s are computed on
    the way (meta.json's ``files``). With ``views`` K, each image comes K times in a
    row (its augmented copies, :meth:`zoo.data.pipeline.Augmentation.copies`), and is stored as
    one example with K features: copies made in one pass stay with their image,
    whatever order the dataset gives its images in. ``total``, the number of examples
    expected, sizes the message of a full disk (:class:`zoo.storage.disk_full.DiskFull`).
    """
    written = {store.FEATURES: _Written(), store.LABELS: _Written()}
    count, shape = 0, ()

    def needed() -> int:
        per_example = written[store.FEATURES].bytes / max(count, 1) + 4
        return int(per_example * max(total or 0, count + 1))

    with (
        disk_full.writing("the cached features", folder, needed),
        open(folder / store.FEATURES, "wb") as features,
        open(folder / store.LABELS, "wb") as labels,
    ):
        for step, (values, targets) in enumerate(predicted):
            if views is not None:
                values = values.reshape(-1, views, *values.shape[1:])
                targets = targets[::views]
            written[store.FEATURES].add(features, values.astype("float32"))
            written[store.LABELS].add(labels, targets.astype("int32"))
            count += len(targets)
            shape = tuple(values.shape[1:])
            disk_full.point("features", folder / store.FEATURES)
            if report is not None:
                report(step)
        for f in (features, labels):  # synced here, where a full disk is named
            f.flush()
            atomic.sync(Path(f.name))
    files = {name: w.to_json() for name, w in written.items()}
    return {"count": count, "shape": list(shape), "views": views, "files": files}


class _Written:
    """The size and CRC-32 of a file written array by array."""

    def __init__(self) -> None:
        self.bytes = 0
        self.crc32 = 0

    def add(self, f: BinaryIO, array: np.ndarray) -> None:
        import numpy as np

        block = np.ascontiguousarray(array).data.cast("B")
        f.write(block)
        self.bytes += block.nbytes
        self.crc32 = zlib.crc32(block, self.crc32)

    def to_json(self) -> dict[str, int]:
        return {"bytes": self.bytes, "crc32": self.crc32}
