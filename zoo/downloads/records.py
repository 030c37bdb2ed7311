"""Checking a downloaded file before use: its size, and a SHA-256 zoo recorded beside it.

Published checks do not cover every cached file: Kaggle publishes no size or hash for
KerasHub preset files, and a file with a published hash would have to be hashed on
every use to be checked against it, a cost that grows with the file. So when zoo
stores a file (downloaded, copied from a bundle) or first finds one intact, it
writes a record beside it, ``.NAME.zoo.json``: the file's size, SHA-256 and
modification time. A use compares the size and modification time from ``stat`` with
the record, and hashes the file only when they differ (a rewrite, a copy, damage) or
when asked to be thorough (``zoo fetch``). A same-size rewrite that also restores the
modification time is not noticed on use; ``zoo fetch`` notices it.

A file that is neither its published size and hashes nor the one zoo recorded is
damaged. :func:`set_aside` moves it to ``NAME.damaged`` (never deleting it: a file a
user placed may be the only copy), so the caller can download it again.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from zoo.storage.declared import Download
from zoo.storage.hashing import file_hashes
from zoo.storage.runs import write_json

#: What a damaged file is renamed to: ``NAME.damaged``, ``NAME.damaged-2``...
DAMAGED = ".damaged"


@dataclass(frozen=True)
class Record:
    """What zoo recorded about a file it stored: size, SHA-256, modification time."""

    size: int
    sha256: str
    mtime_ns: int


def sidecar(path: Path) -> Path:
    """Where the record of the file at ``path`` is kept: ``.NAME.zoo.json`` beside it."""
    return path.with_name(f".{path.name}.zoo.json")


def record(path: Path, sha256: str) -> None:
    """Record the file at ``path`` as it is now; a cache zoo cannot write (read-only, or
    a full disk) goes unrecorded: the file is checked by hashing instead. The record is
    written whole or not at all, and one it replaces goes when it cannot be: a record
    of an earlier file must not stand for this one."""
    stat = path.stat()
    try:
        write_json(sidecar(path), asdict(Record(stat.st_size, sha256, stat.st_mtime_ns)))
    except OSError:
        with contextlib.suppress(OSError):
            sidecar(path).unlink(missing_ok=True)


def recorded(path: Path) -> Record | None:
    """The record of the file at ``path``; None when there is none or it does not read."""
    try:
        data = json.loads(sidecar(path).read_text(encoding="utf-8"))
        return Record(int(data["size"]), str(data["sha256"]), int(data["mtime_ns"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None  # a damaged record is no record: the file is hashed again


def damage(d: Download, *, thorough: bool = False) -> str | None:
    """Why the file at ``d.path`` is not ``d``, in a phrase; None when intact or missing.

    Hashes only when the record does not match ``stat`` (or there is none), or when
    ``thorough``; an intact file hashed is recorded, so the next use is ``stat`` alone.
    """
    try:
        stat = d.path.stat()
    except FileNotFoundError:
        return None
    if d.size is not None and stat.st_size != d.size:
        return f"it has {stat.st_size:,} bytes; {d.name} has {d.size:,}"
    known = recorded(d.path)
    if known is not None and known.size != stat.st_size:
        return f"it has {stat.st_size:,} bytes; zoo stored {known.size:,}"
    if known is not None and known.mtime_ns == stat.st_mtime_ns and not thorough:
        return None
    digests = file_hashes(d.path, "sha256", *(["md5"] if d.md5 else []))
    sha256, md5 = digests["sha256"], digests.get("md5")
    for expected, got, what in (
        (d.sha256, sha256, "SHA-256 is {got}; the one published is {expected}"),
        (d.md5, md5, "MD5 is {got}; the one published is {expected}"),
        (known and known.sha256, sha256, "SHA-256 is {got}; zoo stored one with {expected}"),
    ):
        if expected and got != expected:
            return "its " + what.format(got=got, expected=expected)
    record(d.path, sha256)
    return None


def set_aside(d: Download) -> Path:
    """Move the file at ``d.path`` to a free ``NAME.damaged`` name; its record and marker go.

    Returns:
        Where the file is now.
    """
    aside = d.path.with_name(d.path.name + DAMAGED)
    number = 1
    while aside.exists():
        number += 1
        aside = d.path.with_name(f"{d.path.name}{DAMAGED}-{number}")
    os.replace(d.path, aside)
    sidecar(d.path).unlink(missing_ok=True)
    if d.marker is not None:
        d.marker.unlink(missing_ok=True)  # kagglehub would take the next file as finished
    return aside
