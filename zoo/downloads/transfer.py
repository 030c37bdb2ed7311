"""Moving declared files into place: downloading, copying and verifying them.

Every file is written the same way, whether it comes from a URL or a bundle: under a
temporary name beside its target (:func:`zoo.storage.atomic.staged`), hashed while it is
written, checked (the length the server announced, the declared size and hashes, a
bundle's SHA-256), and only then renamed to its name, so an interrupted or refused
transfer leaves nothing a cache could take for the file. A file written into its cache
gets zoo's record of its size and SHA-256 beside it (:mod:`zoo.downloads.records`), which later
uses check it against. zoo never replaces or deletes a file that is already there: a
damaged one is moved aside first (:func:`zoo.downloads.weights.set_aside_if_damaged`).

A failed transfer raises :class:`Failed` with the reason in a phrase; callers turn it
into a :class:`zoo.ZooError` that says what was being fetched and how to fix it. A full
disk, found before writing, while writing or at the completion marker, is
:class:`zoo.storage.disk_full.DiskFull`; zoo's record, which only spares a hash, is written
where there is room for it (:func:`zoo.downloads.records.record`).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo._version import __version__
from zoo.console import transfers
from zoo.downloads import records
from zoo.storage import atomic, caches, disk_full
from zoo.storage.declared import Download

#: Seconds a download may wait for data before it fails, instead of hanging forever.
TIMEOUT_S = 60.0
CHUNK = 1 << 20
#: How to go on after a full disk.
FIX = (
    "free space on that disk, or keep the file elsewhere (zoo doctor shows where each "
    "cache is and the variable that moves it), then run the command again"
)


class Failed(Exception):
    """A transfer failed; ``reason`` says why in a phrase (``HTTP 404 Not Found``)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Written:
    """A file in place, checked: where, how big, its SHA-256."""

    path: Path
    size: int
    sha256: str


def download(d: Download, target: Path | None = None) -> Written:
    """Download ``d`` to ``target`` (default: its cache path), checked, with progress.

    Raises:
        Failed: the server refused or broke off, or the file is not the one declared.
        DiskFull: the disk has no room for it (:mod:`zoo.storage.disk_full`; nothing is kept).
    """
    target = target or d.path
    with _opened(d.url) as response:
        announced = _length(response)
        if d.size is not None and announced is not None and announced != d.size:
            raise Failed(f"the server offers {announced:,} bytes; {d.name} has {d.size:,}")
        _check_space(d, target, announced or d.size)
        with transfers.transfer(f"downloading {d.name}", announced) as advance:
            return _write(target, _read(response, announced), d, None, advance)


def copy(d: Download, source: Path, target: Path, sha256: str | None = None) -> Written:
    """Copy the file ``source`` to ``target``, checked against ``d`` and ``sha256``.

    Raises:
        Failed: ``source`` cannot be read, or is not the file declared.
        DiskFull: the disk has no room for it (:mod:`zoo.storage.disk_full`; nothing is kept).
    """
    try:
        size = source.stat().st_size
    except OSError as exc:
        raise Failed(f"cannot read {source}: {exc.strerror or exc}") from exc
    _check_space(d, target, size)
    with transfers.transfer(f"copying {d.name}", size) as advance:
        return _write(target, _chunks(source), d, sha256, advance)


def _write(
    target: Path,
    chunks: Iterable[bytes],
    d: Download,
    sha256: str | None,
    advance: Callable[[int], None],
) -> Written:
    """Write ``chunks`` beside ``target``, check them, and rename into place."""
    if target.exists():
        raise Failed(f"{target} already exists; zoo never replaces a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    hashes = _Hashes(d)

    def room() -> contextlib.AbstractContextManager[None]:
        # Around the writes only: a transfer that fails (a timeout) is not the disk's.
        return disk_full.writing(d.name, target, lambda: d.size or hashes.size + CHUNK, FIX)

    try:
        with atomic.staged(target, suffix=".part", replace=False) as partial:
            with open(partial, "wb") as out:
                for chunk in chunks:
                    with room():
                        out.write(chunk)
                    hashes.update(chunk)
                    advance(len(chunk))
                with room():  # some file systems (NFS) report a full disk only here
                    out.flush()
                    atomic.sync(partial)
            hashes.check(d, sha256)
    except FileExistsError:
        raise Failed(f"{target} appeared while zoo wrote it; zoo never replaces a file") from None
    if target == d.path:
        records.record(target, hashes.sha256.hexdigest())
        mark(d)
    return Written(target, hashes.size, hashes.sha256.hexdigest())


def mark(d: Download) -> None:
    """Write ``d``'s completion marker, if it has one, once the file is in place.

    Raises:
        DiskFull: the disk has no room for the marker (not even an inode); the file
            stays, and without its marker is taken for unfinished, unless a hash or
            zoo's record says it is whole.
    """
    if d.marker is not None:
        with disk_full.writing(f"the completion marker of {d.name}", d.marker, lambda: 4096, FIX):
            d.marker.parent.mkdir(parents=True, exist_ok=True)
            d.marker.touch()


class _Hashes:
    """The SHA-256 (always), MD5 (when declared) and size of what is written."""

    def __init__(self, d: Download) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if d.md5 else None
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        if self.md5 is not None:
            self.md5.update(chunk)
        self.size += len(chunk)

    def check(self, d: Download, sha256: str | None) -> None:
        if d.size is not None and self.size != d.size:
            raise Failed(f"it has {self.size:,} bytes; {d.name} has {d.size:,} (truncated?)")
        got = self.sha256.hexdigest()
        for expected, source in ((d.sha256, "published"), (sha256, "in the bundle's manifest")):
            if expected and got != expected:
                raise Failed(f"its SHA-256 is {got}; the one {source} is {expected}")
        if d.md5 and self.md5 is not None and self.md5.hexdigest() != d.md5:
            raise Failed(f"its MD5 is {self.md5.hexdigest()}; the one published is {d.md5}")


class _opened:
    """``urlopen(url)`` as a context manager whose failures are :class:`Failed`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.response: Any = None

    def __enter__(self) -> Any:
        request = urllib.request.Request(self.url, headers={"User-Agent": f"zoo/{__version__}"})
        try:
            self.response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            raise Failed(f"HTTP {exc.code} {exc.reason}") from exc
        except urllib.error.URLError as exc:
            raise Failed(_reason(exc.reason)) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise Failed(_reason(exc)) from exc
        return self.response

    def __exit__(self, *exc: object) -> None:
        self.response.close()


def _length(response: Any) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _read(response: Any, announced: int | None) -> Iterator[bytes]:
    received = 0
    while True:
        try:
            chunk = response.read(CHUNK)
        except http.client.IncompleteRead as exc:
            received += len(exc.partial)
            expected = f" of {announced:,}" if announced else ""
            raise Failed(f"the connection closed after {received:,}{expected} bytes") from exc
        except OSError as exc:  # a timeout or a reset while reading
            broke = f"the transfer broke off after {received:,} bytes"
            raise Failed(f"{broke}: {_reason(exc)}") from exc
        if not chunk:
            if announced is not None and received != announced:
                raise Failed(f"the connection closed after {received:,} of {announced:,} bytes")
            return
        received += len(chunk)
        yield chunk


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        yield from iter(lambda: f.read(CHUNK), b"")


def _check_space(d: Download, target: Path, size: int | None) -> None:
    """Refuse a file of ``size`` bytes that the disk of ``target`` has no room for.

    Raises:
        DiskFull: saying how much it needs and how much is free.
    """
    folder = caches.existing_folder(target.parent)
    if size is not None and size > shutil.disk_usage(folder).free:
        raise disk_full.full(d.name, target, size, FIX)


def _reason(exc: object) -> str:
    """``Connection refused`` rather than ``[Errno 111] Connection refused``."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).strip() or type(exc).__name__
