"""The feature cache on disk: its entries, who is using them, and pruning the least used.

One folder per entry, named by its key (:func:`zoo.train.features.cache.cache_key`)::

    DIR/KEY/meta.json       written last: an entry without it is not one
                            {"format": 2, "count": N, "shape": [...], "views": K or null,
                             "files": {"features.f32": {"bytes": B, "crc32": C},
                                       "labels.i32": {"bytes": B, "crc32": C}},
                             "about": {"dataset", "backbone", "split", "image_size",
                                       "pooled", "runtime", "precision",
                                       "dataset_params", "backbone_params",
                                       "views", "augmentation"}}
    DIR/KEY/features.f32    float32, C order: N x shape (with K views, shape is K x ...)
    DIR/KEY/labels.i32      int32: N
    DIR/KEY/lock            every process using the entry holds a shared flock on it;
                            its modification time is the entry's last use
    DIR/.KEY.XXXXXXXX/      an entry being written; renamed to DIR/KEY when complete

A process takes its shared lock when it opens an entry (or starts writing one) and
keeps it until it is done with the features, so pruning, which removes an entry only
under an exclusive lock it gets without waiting, never removes one in use; the kernel
drops the locks of a process that dies, so nothing stale pins an entry. Pruning removes
the least recently used entries until the cache fits its size, and the folders that
killed writers left behind. Where there is no ``flock`` (Windows), an entry used within
the last hour counts as in use.

An entry is checked before use (:func:`damage`): its meta.json must read, and its files
have the sizes and CRC-32s it records (computed while they were written); listing
compares sizes only. Two processes that extract the same key at once both write their
own folder; the first rename wins and the other keeps the winner's entry.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.train.durability.folders import files_problem

if sys.platform != "win32":
    import fcntl

#: Bytes the feature cache may hold unless a registry file or a flag says otherwise.
DEFAULT_MAX_SIZE = 10 * 1024**3
META = "meta.json"
FEATURES = "features.f32"
LABELS = "labels.i32"
LOCK = "lock"
#: A half-written folder without a lock this old was left by a writer that died.
_ABANDONED_SECONDS = 3600


@dataclass(frozen=True)
class Entry:
    """One cache entry as listed: its key, bytes on disk, last use, what it holds."""

    key: str
    path: Path
    size: int
    last_use: float
    about: dict[str, Any]
    in_use: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": str(self.path),
            "size": self.size,
            "last_use": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.last_use)),
            "in_use": self.in_use,
            **self.about,
        }


@dataclass
class Pruned:
    """What pruning to ``max_size`` did: entries removed, entries kept because they are
    in use, and the size left."""

    max_size: int
    removed: list[Entry] = field(default_factory=list)
    kept_in_use: list[Entry] = field(default_factory=list)
    size: int = 0

    @property
    def freed(self) -> int:
        return sum(entry.size for entry in self.removed)

    @property
    def over(self) -> bool:
        """Still over ``max_size``: what is left is in use."""
        return self.size > self.max_size


class Lease:
    """A shared lock on an entry (or a folder being written): it stays while held."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops its flock
            self._fd = None


def lease(folder: Path) -> Lease | None:
    """Hold ``folder``'s entry and mark it used now; ``None`` when it is gone (pruned)."""
    try:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        return None
    if sys.platform != "win32":
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a pruner removes the entry
    if folder.name.startswith(".") or (folder / META).is_file():
        os.utime(fd)
        return Lease(fd)
    os.close(fd)  # removed while we waited for it
    return None


def entries(directory: Path) -> list[Entry]:
    """The entries under ``directory``, least recently used first; a damaged one says
    what is wrong in ``about["damaged"]``."""
    found = [_read(path) for path in _folders(directory) if not path.name.startswith(".")]
    return sorted(found, key=lambda e: e.last_use)


def prune(directory: Path, max_size: int) -> Pruned:
    """Remove the least recently used entries not in use until the rest fit ``max_size``.

    Folders left half-written by writers that died go first, whatever the size.
    """
    _remove_abandoned(directory)
    listed = entries(directory)
    result = Pruned(max_size, size=sum(e.size for e in listed) + _partial_size(directory))
    for entry in listed:
        if result.size <= max_size:
            break
        _remove_or_keep(entry, result)
    return result


def clear(directory: Path) -> Pruned:
    """Remove every entry not in use (and every abandoned half-written folder)."""
    return prune(directory, 0)


def _remove_or_keep(entry: Entry, result: Pruned) -> None:
    if remove(entry.path):
        result.removed.append(entry)
        result.size -= entry.size
    else:
        result.kept_in_use.append(entry)


def remove(folder: Path) -> bool:
    """Remove ``folder`` unless someone uses it; ``True`` when it is gone."""
    fd = _try_exclusive(folder)
    if fd is None:
        return False
    try:
        # Renamed first: a reader that opened the lock meanwhile finds no meta.json.
        doomed = folder.with_name(f".removing-{folder.name}-{os.getpid()}")
        folder.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    except FileNotFoundError:
        pass  # another pruner was first
    finally:
        if fd >= 0:
            os.close(fd)
    return True


def _try_exclusive(folder: Path) -> int | None:
    """An exclusive lock on ``folder`` (-1: it has no lock file), or ``None`` if in use."""
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return -1
    if sys.platform == "win32":
        os.close(fd)
        recent = time.time() - _mtime(folder / LOCK) < _ABANDONED_SECONDS
        return None if recent else -1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _in_use(folder: Path) -> bool:
    fd = _try_exclusive(folder)
    if fd is not None and fd >= 0:
        os.close(fd)
    return fd is None


def damage(folder: Path, checksums: bool = False) -> str | None:
    """What is wrong with the entry in ``folder``, or ``None``: its meta.json must read,
    and its files hold exactly what it records (sizes; and their CRC-32s when
    ``checksums``, which reads them: about 0.5 ms per MB)."""
    try:
        text = (folder / META).read_text(encoding="utf-8")
    except FileNotFoundError:
        return "meta.json is missing"
    except (OSError, ValueError) as exc:
        return f"meta.json does not read ({exc})"
    try:
        meta = json.loads(text)
        count, shape = int(meta["count"]), [int(n) for n in meta["shape"]]
        files = {name: meta["files"][name] for name in (FEATURES, LABELS)}
        sizes = {name: int(files[name]["bytes"]) for name in files}
    except json.JSONDecodeError as exc:
        return f"meta.json is not valid JSON (line {exc.lineno})"
    except (ValueError, TypeError, KeyError):
        return "meta.json lacks the count, shape or files of the entry"
    values = count * math.prod(shape)  # with views, shape starts with their number
    if sizes != {FEATURES: values * 4, LABELS: count * 4}:
        return "meta.json's sizes disagree with its count and shape"
    return files_problem(folder, files, checksums)


def _read(path: Path) -> Entry:
    lock = path / LOCK
    last_use = _mtime(lock) if lock.exists() else _mtime(path)
    damaged = damage(path)
    about: dict[str, Any] = {"damaged": damaged} if damaged else {}
    if not damaged:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
        about.update(meta.get("about") or {})
    return Entry(path.name, path, _size(path), last_use, about, _in_use(path))


def _folders(directory: Path) -> Iterator[Path]:
    try:
        yield from (path for path in directory.iterdir() if path.is_dir())
    except FileNotFoundError:
        return


def _remove_abandoned(directory: Path) -> None:
    """Half-written or half-removed folders whose process died."""
    for path in _folders(directory):
        if not path.name.startswith("."):
            continue
        if not (path / LOCK).exists() and time.time() - _mtime(path) < _ABANDONED_SECONDS:
            continue  # just created: its writer is about to lock it
        remove(path)


def _partial_size(directory: Path) -> int:
    return sum(_size(path) for path in _folders(directory) if path.name.startswith("."))


def _size(folder: Path) -> int:
    return sum(_file_size(path) or 0 for path in folder.rglob("*"))


def _file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
