"""The ``image_folder`` dataset: your own images, one subfolder per class.

``PetImages/Cat/*.jpg`` and ``PetImages/Dog/*.jpg`` make two classes, ``Cat`` and
``Dog`` (folder names, sorted). The images are split per class, in a seeded order that
does not depend on the file system's listing order: ``validation_fraction`` and
``test_fraction`` of each class (0.1 each, 80/10/10, by default). A folder that holds
``train/``, ``validation/`` (or ``val/``) and ``test/`` folders, each with the class
subfolders, keeps its own split; a missing ``validation/`` or ``test/`` is carved from
``train/`` at its fraction (the fraction of a split the folder has is not used, and a
warning says so when it was changed).

Images are the files whose names say so (``zoo.image_files``: JPEG, PNG, WebP, TIFF and
every other raster format Pillow reads); other files (``notes.txt``, ``Thumbs.db``) are
ignored. Before training, every image is decoded once (``zoo.find_unreadable``), so
unreadable ones (empty, truncated, not what their name says) are skipped and named
before the first epoch, and the split sizes are exact. Files that are not regular files
(a named pipe, a link to ``/dev/zero``), files over ``ZOO_MAX_IMAGE_BYTES`` and images
over ``ZOO_MAX_IMAGE_PIXELS`` are skipped and named the same way, never read whole nor
decoded (``zoo.image_limits``); each epoch reads through the same checks. The verdicts
are cached per folder in zoo's cache (``zoo.zoo_cache()``: ``$ZOO_CACHE_DIR``, default
``~/.cache/zoo``), keyed by each file's size and modification time and by the limits;
the next run decodes only new or changed files. The cache carries the SHA-256 of its
verdicts: a damaged one is said in one line and every image is checked again.

The splits tell zoo their per-class counts and, for validation and test (which keep
their order), the file of each example, so a run's evaluation names the misclassified
files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zoo

from . import split_fractions

if TYPE_CHECKING:
    import tensorflow as tf

#: Folder names that mark a folder's own split, per split.
SPLIT_FOLDERS = {"train": ("train",), "validation": ("validation", "val"), "test": ("test",)}
#: How the training split is ordered, in the fingerprint: features cached when the names
#: were reshuffled on every pass were stored in another order, and get other keys.
ORDER = "names shuffled once"


@dataclass(frozen=True)
class Layout:
    """Where a folder's images are: its classes, and a folder per split it provides.

    ``folders`` always has ``"train"`` (the root itself when the folder has no split
    folders); the splits it lacks are carved from train.
    """

    root: Path
    class_names: list[str]
    folders: dict[str, Path]


def layout(path: str) -> Layout:
    """Read the folder's structure (names only, nothing is decoded).

    Raises:
        ZooError: the folder is missing, has split folders mixed with class folders,
            or has fewer than two class folders.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise zoo.ZooError(
            f"image_folder: the folder {root} does not exist.",
            expected="a folder with one subfolder of images per class",
            fix="pass it with --set dataset.path=FOLDER (for example PetImages)",
            got=str(root),
        )
    folders = _split_folders(root)
    names = _subfolders(folders["train"])
    if len(names) < 2:
        _too_few_classes(folders["train"], names)
    for split, folder in folders.items():
        extra = sorted(set(_subfolders(folder)) - set(names))
        if extra:
            raise zoo.ZooError(
                f"image_folder: {folder} has class folders that {folders['train']} lacks.",
                expected="the same class folders in every split (train/ has them all)",
                fix=f"add them to train/ or remove them from {split}/",
                got=extra,
            )
    return Layout(root, names, folders)


def _subfolders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_folders(root: Path) -> dict[str, Path]:
    present = set(_subfolders(root))
    if "train" not in present:
        return {"train": root}
    found = {
        split: root / next(n for n in names if n in present)
        for split, names in SPLIT_FOLDERS.items()
        if present & set(names)
    }
    strays = sorted(present - {f.name for f in found.values()})
    if strays:
        raise zoo.ZooError(
            f"image_folder: {root} has a train/ folder and other folders besides.",
            expected="either class folders only, or train/, validation/ (or val/) and test/ "
            "folders that each hold the class folders",
            fix="move the other folders into the split folders, or rename train/",
            got=strays,
        )
    return found


def _too_few_classes(folder: Path, names: list[str]) -> None:
    loose = zoo.image_files(folder).images if not names else []
    raise zoo.ZooError(
        f"image_folder: {folder} has {len(names)} class folder(s); a classifier needs two "
        "or more." + (f" It holds {len(loose)} images directly." if loose else ""),
        expected="one subfolder of images per class, for example Cat/ and Dog/",
        fix="put each class's images in a subfolder named after the class",
        got=names,
    )


def class_names(params: Mapping[str, Any]) -> list[str]:
    """The class folder names, sorted: label 0 is the first."""
    return layout(params["path"]).class_names


def build(params: Mapping[str, Any]) -> zoo.Splits:
    within = zoo.image_limits()
    found = layout(params["path"])
    own = {split: str(folder) for split, folder in found.folders.items() if split != "train"}
    fractions = split_fractions.carved("image_folder", params, own)
    listed = {
        split: [zoo.image_files(folder / name) for name in found.class_names]
        for split, folder in found.folders.items()
    }
    decoder = _decoder_id()
    named = [p for per_class in listed.values() for f in per_class for p in f.images]
    # Verdicts depend on the limits too; the fingerprint, on the files kept alone.
    skipped = _unreadable(found.root, named, f"{decoder}/limits {within.pixels} {within.bytes}")
    files = {
        split: [[p for p in f.images if p not in skipped] for f in per_class]
        for split, per_class in listed.items()
    }
    # Each class's files are in path order: the split depends on the seed and names alone.
    files = {**files, **split_fractions.carve(files["train"], params["seed"], fractions)}
    _check(found, files, skipped, fractions)
    return zoo.Splits(
        train=_dataset(files["train"], within, shuffle_seed=params["seed"]),
        validation=_dataset(files["validation"], within),
        test=_dataset(files["test"], within),
        class_names=found.class_names,
        sizes={split: sum(map(len, files[split])) for split in SPLIT_FOLDERS},
        skipped=len(skipped),
        fingerprint=_fingerprint(found.root, files, decoder),
        unreadable={os.fspath(p): reason for p, reason in sorted(skipped.items())},
        class_counts={split: [len(paths) for paths in files[split]] for split in SPLIT_FOLDERS},
        # In the order _dataset yields them; train is shuffled (zoo reshuffles each epoch).
        files={
            split: [os.fspath(p) for paths in files[split] for p in paths]
            for split in ("validation", "test")
        },
    )


def _check(
    found: Layout,
    files: Mapping[str, list[list[Path]]],
    skipped: Mapping[Path, str],
    fractions: Mapping[str, float],
) -> None:
    """Every class needs a training image; every split needs an image."""
    for label, name in enumerate(found.class_names):
        if not files["train"][label]:
            folder = found.folders["train"] / name
            bad = sum(1 for p in skipped if p.is_relative_to(folder))
            carved = sum(len(files[split][label]) for split in fractions)
            raise zoo.ZooError(
                f"image_folder: class '{name}' has no readable training image "
                f"({bad} file(s) in {folder} skipped as unreadable, {carved} carved for "
                "validation and test).",
                expected="at least one readable image (JPEG, PNG, WebP, TIFF...) per class",
                fix=f"add images to {folder}, or remove the folder to drop the class"
                + (", or lower dataset.validation_fraction and test_fraction" if carved else ""),
                got=name,
            )
    for split in ("validation", "test"):
        if not any(files[split]):
            where = str(found.folders.get(split, found.folders["train"]))
            raise split_fractions.empty("image_folder", split, where, fractions.get(split))


def _dataset(
    per_class: Sequence[Sequence[Path]], within: zoo.ImageLimits, shuffle_seed: int | None = None
) -> tf.data.Dataset:
    """``(uint8 image, label)`` pairs, decoded in parallel; in a seeded order if seeded."""
    import tensorflow as tf

    paths = [os.fspath(p) for group in per_class for p in group]
    labels = [label for label, group in enumerate(per_class) for _ in group]
    pairs = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(labels, tf.int64))
    )
    if shuffle_seed is not None:
        # Shuffling names is cheap, so the whole split is shuffled, not a buffer of it:
        # once, the same on every pass. zoo reshuffles each epoch from the epoch's seed
        # (its shuffle buffer, after resizing). Reshuffled on every pass here, each pass
        # would take the seed's next order: a resumed process would start again at the
        # first, and extracting features (a pass) would move fine-tuning's orders.
        pairs = pairs.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=False)
    return pairs.map(
        lambda path, label: (zoo.decode_image_file(path, within), label),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def _fingerprint(root: Path, files: Mapping[str, list[list[Path]]], decoder: str) -> str:
    """A digest of the decoder and of every file used: split, label, name, size, time.

    It changes whenever the pixels a run sees, or their order, could change (zoo keys
    cached features on it).
    """
    digest = hashlib.sha256(f"{decoder}/{ORDER}".encode())
    for split in SPLIT_FOLDERS:
        for label, paths in enumerate(files[split]):
            for p in paths:
                digest.update(f"{split}/{label}/{_key(root, p)}/{_stamp(p)}\n".encode())
    return f"sha256:{digest.hexdigest()[:16]}"


def _key(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


# The cache of decoding verdicts: {"decoder": ..., "root": ..., "files": {key: [size,
# mtime_ns, reason]}, "sha256": of the files' JSON}. A cache that does not read or whose
# SHA-256 differs is damaged: said in one line, and every image is checked again.


def _unreadable(root: Path, paths: Sequence[Path], decoder: str) -> dict[Path, str]:
    """The unreadable files among ``paths``, decoding only those the cache does not know."""
    cache_file = _cache_file(root)
    cached = _read_cache(cache_file, decoder)
    stamps = {p: _stamp(p) for p in paths}
    verdicts: dict[Path, str | None] = {}
    for p in paths:
        entry = cached.get(_key(root, p))
        if entry and stamps[p] and entry[:2] == stamps[p]:
            verdicts[p] = entry[2]
    fresh = [p for p in paths if p not in verdicts]
    found = zoo.find_unreadable(fresh)
    verdicts.update({p: found.get(p) for p in fresh})
    if fresh:
        entries = {_key(root, p): [*stamp, verdicts[p]] for p, stamp in stamps.items() if stamp}
        _write_cache(cache_file, {"decoder": decoder, "root": str(root), "files": entries})
    return {p: reason for p, reason in verdicts.items() if reason}


def _cache_file(root: Path) -> Path:
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return zoo.zoo_cache() / "image_folder" / f"{key}.json"


def _decoder_id() -> str:
    import PIL
    import tensorflow as tf

    return f"{zoo.IMAGE_DECODER_VERSION}/tensorflow {tf.__version__}/pillow {PIL.__version__}"


def _stamp(path: Path) -> list[int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _read_cache(path: Path, decoder: str) -> dict[str, list[Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        return _damaged(path, f"it does not read: {exc}")
    if not isinstance(data, dict) or data.get("decoder") != decoder:
        return {}  # another decoder's verdicts: outdated, not damaged
    files = data.get("files")
    if not isinstance(files, dict) or data.get("sha256") != _digest(files):
        return _damaged(path, "its SHA-256 differs from when it was written")
    return files


def _damaged(path: Path, problem: str) -> dict[str, list[Any]]:
    zoo.warning(f"the image checks cached in {path} were damaged ({problem}): checked again.")
    return {}


def _digest(files: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def _write_cache(path: Path, data: dict[str, Any]) -> None:
    """Write atomically; a cache that cannot be written only costs time next run."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        data = {**data, "sha256": _digest(data["files"])}
        temporary.write_text(json.dumps(data), encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        pass


PARAMS: Sequence[zoo.Param] = (
    zoo.Param(
        "path",
        str,
        required=True,
        help="the folder: one subfolder of images per class (e.g. PetImages with Cat/ "
        "and Dog/), or train/, validation/ (or val/) and test/ folders holding them",
    ),
    zoo.Param(
        "seed",
        int,
        0,
        help="seeds the per-class split (80/10/10 by default) and the order of training images",
        minimum=0,
    ),
    *split_fractions.PARAMS,
)


@zoo.hookimpl
def register_datasets(register: Callable[[zoo.Dataset], None]) -> None:
    register(
        zoo.Dataset(
            name="image_folder",
            description="Your images, one subfolder per class (JPEG, PNG, WebP, TIFF and "
            "more), split 80/10/10 by default",
            params=PARAMS,
            build=build,
            class_names=class_names,
        )
    )
