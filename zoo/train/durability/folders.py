"""Folders written whole, whose files can be checked later: checkpoints and best epochs.

A folder is written under a temporary name, flushed to disk and renamed into place
(:func:`write_folder`), so a process killed at any moment leaves all of it or none.
What a later process finds may still be damaged (a truncated copy, a full disk, a stray
``truncate``), so the folder's ``state.json`` records each file's size and SHA-256
(:func:`describe_files`), and :func:`files_problem` checks them before anything is
loaded: hashing a checkpoint costs little next to the epoch that wrote it. The feature
cache records a CRC-32 instead (``{"bytes", "crc32"}``, computed as its files are
written, and several times faster to check), because its entries are read again by
every run that uses them.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from zoo.storage import atomic, disk_full
from zoo.storage.hashing import file_sha256


def write_folder(
    parent: Path, name: str, write: Callable[[Path], None], what: str, needed: Callable[[], int]
) -> Path:
    """``parent/name``, written by ``write(folder)`` under a temporary name and renamed
    into place (:func:`zoo.storage.atomic.staged`): a process killed at any moment leaves
    all of it or none. An existing folder of that name (a resumed run redoing an epoch)
    is replaced. A full disk is a :class:`zoo.storage.disk_full.DiskFull` naming ``what``
    and the bytes ``needed()`` estimates.
    """
    parent.mkdir(exist_ok=True)
    final = parent / name
    with disk_full.writing(what, final, needed), atomic.staged(final, folder=True) as partial:
        write(partial)
    return final


def save_weights(model: Any, path: Path) -> None:
    """``model.save_weights(path)``, the HDF5 file built in memory, then written with one
    plain write: a full disk then fails that write (``ENOSPC``), never one of HDF5's own,
    which leave it unable to close the file and crash the process as it exits
    (:mod:`zoo.storage.disk_full`). Keras builds a ``.keras`` file's weights in memory the same
    way; here it takes the buffer for a file name by its ``str``, as ``save_weights``
    reads the name (h5py writes to anything with ``read`` and ``seek``)."""
    memory = _Named(str(path))
    model.save_weights(memory)
    path.write_bytes(memory.getbuffer())


class _Named(io.BytesIO):
    """A buffer that ``str`` names like a file."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def __str__(self) -> str:
        return self.name


def describe_files(folder: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{name: {"bytes": size, "sha256": digest}}`` of files just written in ``folder``."""
    return {
        name: {"bytes": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)}
        for name in names
    }


def files_problem(folder: Path, recorded: Mapping[str, Any], checksums: bool = True) -> str | None:
    """What is wrong with the files of ``folder``, against :func:`describe_files`'s record
    (or one with a ``crc32`` instead of a ``sha256``): ``optimizer.npz is truncated
    (1,024 of 4,096 bytes)``; ``None`` when all are intact. ``checksums=False`` compares
    sizes only (``stat`` alone)."""
    for name, expected in recorded.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size, written = path.stat().st_size, int(expected["bytes"])
        if size != written:
            how = "truncated" if size < written else "longer than when it was written"
            return f"{name} is {how} ({size:,} of {written:,} bytes)"
        if checksums and not _same_checksum(path, expected):
            kind = "SHA-256" if "sha256" in expected else "CRC-32"
            return f"{name} is corrupted (its {kind} differs from when it was written)"
    return None


def file_crc32(path: Path) -> int:
    """The CRC-32 of a file, read in 4 MiB blocks."""
    crc = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            crc = zlib.crc32(block, crc)
    return crc


def _same_checksum(path: Path, expected: Mapping[str, Any]) -> bool:
    if "sha256" in expected:
        return file_sha256(path) == expected["sha256"]
    return file_crc32(path) == int(expected["crc32"])
