"""Which files are images, and the files under a folder; no TensorFlow.

Which files are images is decided by their names (:data:`IMAGE_EXTENSIONS`): the
raster formats Pillow reads without outside programs. Other files (``notes.txt``,
``Thumbs.db``, ``.heic`` without a Pillow plugin) are not images and are left alone,
never counted as unreadable. Listing a folder imports nothing heavy, so a dataset's
metadata and ``zoo predict``'s checks of its arguments answer before TensorFlow loads;
:mod:`zoo.data.images` decodes the files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

#: File name endings read as images (compared in lower case): the raster formats
#: Pillow reads by itself. (Pillow also opens ``.eps``, ``.mpg``, ``.h5`` and others by
#: name, but only with outside programs or not at all: those stay "not images".)
IMAGE_EXTENSIONS = (
    ".apng", ".avif", ".bmp", ".dib", ".gif", ".ico", ".j2k", ".jfif", ".jp2", ".jpe",
    ".jpeg", ".jpg", ".pbm", ".pcx", ".pgm", ".png", ".pnm", ".ppm", ".qoi", ".sgi",
    ".tga", ".tif", ".tiff", ".webp",
)  # fmt: skip


class FolderFiles(NamedTuple):
    """The files under a folder: images (by their ending) and everything else."""

    images: list[Path]
    others: list[Path]


def is_image_name(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` ends like an image file zoo reads (``.jpg``, ``.PNG``, ...)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def find_files(folder: str | os.PathLike[str]) -> FolderFiles:
    """Every file under ``folder``, recursively, sorted by relative path.

    Hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``) are left out;
    other files that are not images (``Thumbs.db``, ``README.txt``) are in ``others``.
    The order does not depend on the file system's listing order.
    """
    root = Path(folder)
    found = []
    for parent, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(parent, f) for f in files if not f.startswith(".")]
    found.sort(key=lambda p: p.relative_to(root).as_posix())
    images = [p for p in found if is_image_name(p)]
    return FolderFiles(images, [p for p in found if not is_image_name(p)])
