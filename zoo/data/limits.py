"""Opening image files others made: regular files only, a bounded size, a pixel limit.

An image file is untrusted data. A named pipe called ``x.png`` blocks whoever opens it
for reading, a link to ``/dev/zero`` called ``z.png`` never ends, and a 390 KB PNG of
20000x20000 pixels decodes to 1.2 GB (TensorFlow's decoders have no pixel limit;
Pillow's decompression-bomb check covers only what Pillow decodes). So:

- :func:`read_file` opens regular files only (``os.stat`` after resolving links, then
  ``fstat`` on the descriptor, opened without blocking) and reads at most
  ``ZOO_MAX_IMAGE_BYTES``;
- :func:`read_header` reads an image's size from its header (Pillow parses the header
  of every format zoo reads without decoding it) and refuses one over
  ``ZOO_MAX_IMAGE_PIXELS``, before any decoder allocates its pixels; it reads the
  format, mode and EXIF orientation the decoder needs from the same header.

:mod:`zoo.data.images` reads and decodes through these, in tf.data as eagerly, so training,
``zoo predict`` and ``zoo evaluate`` refuse the same files for the same reasons.
"""

from __future__ import annotations

import io
import os
import re
import stat
from pathlib import Path
from typing import NamedTuple

from zoo.errors import ZooError

#: The most pixels an image may have, unless ``ZOO_MAX_IMAGE_PIXELS`` says otherwise:
#: Pillow's own decompression-bomb limit (twice ``PIL.Image.MAX_IMAGE_PIXELS``), an
#: image 13,377 pixels square, 537 MB decoded.
MAX_PIXELS = 178_956_970
#: The largest image file read, unless ``ZOO_MAX_IMAGE_BYTES`` says otherwise: 1 GiB,
#: above any uncompressed 8-bit RGBA image within :data:`MAX_PIXELS` (716 MB).
MAX_BYTES = 2**30
PIXELS_VARIABLE = "ZOO_MAX_IMAGE_PIXELS"
BYTES_VARIABLE = "ZOO_MAX_IMAGE_BYTES"
#: What a file that is not a regular one is, by its type.
_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}
#: A pipe swapped in after the check then opens without waiting for a writer.
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class UnreadableImage(Exception):
    """An image file that cannot be decoded; the message says which file and why.

    Args:
        path: The file.
        reason: Why it cannot be read, for example ``"the file is empty (0 bytes)"``.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class Limits(NamedTuple):
    """How many pixels an image, and how many bytes its file, may have."""

    pixels: int = MAX_PIXELS
    bytes: int = MAX_BYTES


def limits() -> Limits:
    """The limits in force: ``ZOO_MAX_IMAGE_PIXELS`` and ``ZOO_MAX_IMAGE_BYTES``, if set.

    Raises:
        ZooError: a variable set to anything but a positive whole number.
    """
    return Limits(_positive(PIXELS_VARIABLE, MAX_PIXELS), _positive(BYTES_VARIABLE, MAX_BYTES))


def _positive(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    if re.fullmatch(r"\s*[0-9]+\s*", text) and int(text) > 0:
        return int(text)
    unit = "pixels an image" if name == PIXELS_VARIABLE else "bytes an image file"
    raise ZooError(
        f"the environment variable {name} is not a positive whole number.",
        expected=f"the most {unit} may have, for example {default} (the default)",
        fix=f"set {name} to a whole number above 0, or unset it",
        got=text,
    )


def read_file(path: str | os.PathLike[str], limit: int = MAX_BYTES) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes.

    A named pipe, a device or a socket (or a link to one) is refused before it is
    opened: reading it can block forever or never end. The file is opened without
    blocking and checked again on the open descriptor, so one swapped for a pipe in
    between is refused too; and no more than ``limit`` + 1 bytes are ever read.

    Raises:
        UnreadableImage: the file is missing, not a regular file, or over ``limit``.
    """
    path = Path(path)
    try:
        _require_regular(path, os.stat(path), limit)
        fd = os.open(path, os.O_RDONLY | _NONBLOCK)
    except OSError as exc:
        raise UnreadableImage(path, exc.strerror or str(exc)) from exc
    try:
        found = os.fstat(fd)
        _require_regular(path, found, limit)
        data = _read_at_most(fd, found.st_size, limit)
    except OSError as exc:
        raise UnreadableImage(path, exc.strerror or str(exc)) from exc
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew after the check
        raise UnreadableImage(path, _too_large(f"more than {limit:,}", limit))
    return data


def _require_regular(path: Path, found: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(found.st_mode):
        kind = _KINDS.get(stat.S_IFMT(found.st_mode), "a special file")
        link = f" (a link to {os.path.realpath(path)})" if path.is_symlink() else ""
        raise UnreadableImage(
            path, f"it is {kind}{link}, not a regular file: reading it could block or never end"
        )
    if found.st_size > limit:
        raise UnreadableImage(path, _too_large(f"{found.st_size:,}", limit))


def _read_at_most(fd: int, expected: int, limit: int) -> bytes:
    """Up to ``limit`` + 1 bytes (one more than allowed shows the file is over).

    The first read asks for the size the file had; more is read in small parts, so
    nothing near ``limit`` is allocated for a file that is not that large.
    """
    parts, size, wanted = [], 0, min(expected, limit) + 1
    while size <= limit and (part := os.read(fd, min(wanted, limit + 1 - size))):
        parts.append(part)
        size, wanted = size + len(part), 2**16
    return b"".join(parts)


def _too_large(size: str, limit: int) -> str:
    return f"the file is {size} bytes, over the limit of {limit:,} ({BYTES_VARIABLE} raises it)"


class Header(NamedTuple):
    """What an image's header says, besides its size: how zoo decodes and turns it."""

    #: Pillow's name for the format, for example ``"JPEG"``.
    format: str
    #: Pillow's mode, for example ``"RGB"``, ``"CMYK"`` or ``"I;16"``.
    mode: str
    #: The EXIF orientation, 1 to 8 (:func:`zoo.data.exif.orientation`).
    orientation: int


def read_header(data: bytes, limit: int = MAX_PIXELS) -> Header:
    """Refuse an image of more than ``limit`` pixels, read from its header alone.

    Pillow reads the header of every format zoo reads without decoding the pixels. A
    GIF counts every frame: TensorFlow's decoder holds them all, whichever it returns.

    Raises:
        ValueError: the header does not read, or the image is over ``limit``.
    """
    from PIL import Image, UnidentifiedImageError

    from zoo.data.exif import orientation

    _pillow_allows(limit)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            frames = getattr(image, "n_frames", 1) if image.format == "GIF" else 1
            header = Header(image.format or "", image.mode, orientation(image, data))
    except UnidentifiedImageError as exc:
        raise ValueError(
            "Unknown image file format: Pillow does not read its header, so its size "
            "cannot be checked before decoding"
        ) from exc
    except Image.DecompressionBombError as exc:  # over Pillow's limit, so over ``limit``
        counted = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(counted[1]):,} pixels" if counted else "too many pixels"
        raise ValueError(_over(f"the image ({size})", limit)) from exc
    except Exception as exc:  # Pillow raises SyntaxError, OSError, struct.error...
        raise ValueError(f"its header does not read: {exc}") from exc
    if width * height * frames > limit:
        shape = f"{width}x{height}" if frames == 1 else f"{frames} frames of {width}x{height}"
        raise ValueError(_over(f"{shape} ({width * height * frames:,} pixels)", limit))
    return header


def _over(what: str, limit: int) -> str:
    return (
        f"{what} is over the limit of {limit:,} pixels: a decompression bomb, or too "
        f"large to decode safely ({PIXELS_VARIABLE} raises the limit)"
    )


def _pillow_allows(limit: int) -> None:
    """Raise Pillow's decompression-bomb limit to ``limit`` where it is lower.

    Pillow refuses an image over twice its ``MAX_IMAGE_PIXELS`` as it opens it; zoo
    has checked its own limit by then. Pillow's is never lowered.
    """
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and limit > 2 * Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = -(-limit // 2)


def read_checked(name: str | bytes, within: Limits) -> tuple[bytes, Header]:
    """The file ``name``'s bytes, read within ``within``, and its header, checked.

    Raises:
        ValueError: as :func:`read_header`, or the file cannot be read (the reason).
    """
    try:
        data = read_file(os.fsdecode(name), within.bytes)
    except UnreadableImage as exc:
        raise ValueError(exc.reason) from exc
    return data, read_header(data, within.pixels)
