"""What components download: the ``Download`` declaration, and whether a file is in place.

A component that needs files from the network declares them (``downloads=`` on
``zoo.Dataset``, ``zoo.Backbone`` or ``zoo.Head``): a function of its resolved
parameters that returns one :class:`Download` per file, saying where it comes from,
where its cache keeps it, and what zoo can check about it. zoo reads declarations
without building anything, so a declaration imports no TensorFlow and touches no
network; cache locations are computed from environment variables when it is called.

Whether a file is in place is decided by ``stat`` alone, so ``zoo list`` can ask it of
every component in milliseconds: the file exists with the declared size (any size when
none is declared) and, when it has one, its completion marker. Hashes are checked when
a file is fetched, copied into a bundle or installed from one, never by ``zoo list``
(hashing a dataset's archive takes seconds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from zoo.storage.confine import inside

#: Where a declared file stands: ``present`` (in its cache), ``prepared`` (not needed:
#: what it is made into is there, such as a dataset TFDS has prepared from it),
#: ``missing``, ``wrong size`` (a partial or damaged copy; zoo moves it aside, never deletes it) or
#: ``incomplete`` (the file without its completion marker: its cache's owner, such as
#: kagglehub, treats it as an unfinished download).
FileState = Literal["present", "prepared", "missing", "wrong size", "incomplete"]
#: The states that need nothing fetched.
IN_PLACE: tuple[FileState, ...] = ("present", "prepared")
#: The URLs zoo downloads from (``file://`` for a mirror on a shared file system).
SCHEMES = ("https://", "http://", "file://")
_HEX = re.compile(r"[0-9a-f]+")
#: How to fix a declared file whose path leads outside its cache.
CONFINED_FIX = (
    "give values that keep the files in their cache (a bundle's values are in its "
    "zoo-bundle.json: install only bundles from people you trust), and move a cache with "
    "its environment variable rather than by linking folders inside it to elsewhere"
)


@dataclass(frozen=True)
class Download:
    """One file a component downloads before it can be built.

    Args:
        name: The file's name, unique among the component's downloads; a relative
            path (``"assets/vocab.txt"``) when the cache keeps it in a subfolder. A
            bundle stores the file under this name.
        url: Where it is downloaded from: ``https://``, or ``http://`` and ``file://``
            for local mirrors.
        path: Where its cache keeps it: the absolute path of the file itself.
        size: Its size in bytes, when published; a download or a cached copy of
            another size is refused (a truncated file), and ``zoo list`` compares it.
        sha256: Its SHA-256 in hex, when published.
        md5: Its MD5 in hex, when that is what is published (Keras Applications).
            With neither hash, a download is checked against the length the server
            announces, and a bundle records the SHA-256 of what was fetched.
        marker: An empty file to write once the file is in place, when its cache marks
            finished downloads so (kagglehub's ``.complete`` files); the file counts
            as in place only with it.
        prepared: A path whose existence makes the file unnecessary, such as the
            folder of a dataset already prepared from the archive.
        root: The cache folder ``path`` and ``marker`` must stay in. Paths built from
            parameters (a preset handle, a bundle's values) are resolved, symbolic
            links followed, and refused before anything is written when they lead
            outside it (:func:`confined`). ``zoo fetch --from`` also holds a bundle's
            files to the root declared with this machine's values (else the file's
            folder) or zoo's known caches (:func:`zoo.downloads.readiness.bundled`): declare it when
            parameters choose a subfolder of a cache of the plugin's own.
    """

    name: str
    url: str
    path: Path
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    marker: Path | None = None
    prepared: Path | None = None
    root: Path | None = None

    @property
    def checksum(self) -> str:
        """``sha256:HEX``, ``md5:HEX``, or ``unknown`` when nothing is published."""
        if self.sha256:
            return f"sha256:{self.sha256}"
        return f"md5:{self.md5}" if self.md5 else "unknown"


def state(download: Download) -> FileState:
    """Where ``download`` stands, by ``stat`` alone (no hashing)."""
    try:
        size = download.path.stat().st_size
    except OSError:
        size = None
    if size is not None and download.size is not None and size != download.size:
        return "wrong size"
    if size is not None:
        marked = download.marker is None or download.marker.exists()
        return "present" if marked else "incomplete"
    if download.prepared is not None and download.prepared.exists():
        return "prepared"
    return "missing"


def confined(d: Download, owner: str, fix: str = CONFINED_FIX) -> None:
    """Check that ``d``'s file and marker stay inside ``d.root`` (when it has one).

    ``owner`` is what declares ``d`` ("backbone keras_hub with preset='...'").

    Raises:
        ZooError: a path, or a symbolic link on the way, leads outside the root.
    """
    if d.root is None:
        return
    for path in (d.path, d.marker):
        if path is not None:
            inside(path, d.root, what=f"{d.name} for {owner}", got=str(path), fix=fix)


def problems(downloads: object) -> list[str]:
    """What is wrong with a declaration's result; empty when it keeps the contract."""
    if not isinstance(downloads, list | tuple):
        return [f"returned {type(downloads).__name__}, not a list of zoo.Download"]
    found = []
    names = []
    for item in downloads:
        if not isinstance(item, Download):
            found.append(f"returned {type(item).__name__} among its downloads, not zoo.Download")
            continue
        names.append(item.name)
        found += [f"{item.name!r}: {problem}" for problem in _problems(item)]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        found.append(f"declares the name(s) {', '.join(map(repr, twice))} twice")
    return found


def _problems(d: Download) -> list[str]:
    checks = [
        (_relative(d.name), "its name must be a relative path without '..'"),
        (isinstance(d.url, str) and d.url.startswith(SCHEMES), f"its url must start {SCHEMES}"),
        (_absolute(d.path), "its path must be an absolute pathlib.Path"),
        (d.size is None or (type(d.size) is int and d.size >= 0), "its size must be None or >= 0"),
        (_hex(d.sha256, 64), "its sha256 must be None or 64 lowercase hex digits"),
        (_hex(d.md5, 32), "its md5 must be None or 32 lowercase hex digits"),
        (d.marker is None or _absolute(d.marker), "its marker must be None or an absolute Path"),
        (d.prepared is None or _absolute(d.prepared), "its prepared must be None or absolute"),
        (d.root is None or _absolute(d.root), "its root must be None or an absolute Path"),
    ]
    return [problem for ok, problem in checks if not ok]


def _absolute(path: object) -> bool:
    return isinstance(path, Path) and path.is_absolute()


def _relative(name: object) -> bool:
    if not isinstance(name, str) or not name or "\\" in name:
        return False
    path = PurePosixPath(name)
    return bool(path.parts) and not path.is_absolute() and ".." not in path.parts


def _hex(value: object, length: int) -> bool:
    return value is None or (
        isinstance(value, str) and len(value) == length and _HEX.fullmatch(value) is not None
    )
