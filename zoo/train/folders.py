"""Folders written whole, whose files can be checked later: checkpoints and best epochs.

A folder is written under a temporary name, flushed to disk and renamed into place
(:func:`write_folder`), so a process killed at any moment leaves all of it or none.
What a later process finds may still be damaged (a truncated copy, a full disk, a stray
``truncate``), so the folder's ``state.json`` records each file's size and SHA-256
(:func:`describe_files`), and :func:`files_problem` checks them before anything is
loaded: hashing costs about a second per GB, next to the minutes an epoch of a model
that large takes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from zoo.train.record import file_sha256


def write_folder(parent: Path, name: str, write: Callable[[Path], None]) -> Path:
    """``parent/name``, written by ``write(folder)`` under a temporary name, flushed to
    disk and renamed into place: a process killed at any moment leaves all of it or
    none. An existing folder of that name (a resumed run redoing an epoch) is replaced.
    """
    parent.mkdir(exist_ok=True)
    final = parent / name
    partial = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    try:
        write(partial)
        _fsync_tree(partial)
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


def describe_files(folder: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{name: {"bytes": size, "sha256": digest}}`` of files just written in ``folder``."""
    return {
        name: {"bytes": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)}
        for name in names
    }


def files_problem(folder: Path, recorded: Mapping[str, Any]) -> str | None:
    """What is wrong with the files of ``folder``, against :func:`describe_files`'s record:
    ``optimizer.npz is truncated (1,024 of 4,096 bytes)``; ``None`` when all are intact."""
    for name, expected in recorded.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size, written = path.stat().st_size, int(expected["bytes"])
        if size != written:
            how = "truncated" if size < written else "longer than when it was written"
            return f"{name} is {how} ({size:,} of {written:,} bytes)"
        if file_sha256(path) != expected["sha256"]:
            return f"{name} is corrupted (its SHA-256 differs from when it was written)"
    return None


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
