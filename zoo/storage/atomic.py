"""Files and folders written whole: a reader or a crash finds the old one or the new one.

zoo's one fsync policy: what is written is made durable (``fsync``, every file of a
folder and the folder itself) before the rename that gives it its name, and the folder
holding that name is made durable after the rename. A crash or a full disk at any
moment then leaves the previous version or the new one, never a name for partial data.

:func:`staged` is the way in: it hands the writer a temporary file or folder beside
the target (``.NAME.XXXXXXXX.tmp``), created empty with the modes a plain ``open`` or
``mkdir`` gives (0666 or 0777 less the umask), which the writer fills as it likes
(Keras saving a model by name, ``open``, files in a folder); it goes if the writer
fails. One temporary beside the target, not a folder around it: a disk with one free
inode still takes the file. :func:`write_bytes` writes bytes from memory through it;
:func:`sync` and :func:`publish` are its two steps, for writers that place their own
temporary folder (the feature cache's, which a lease holds).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: The umask, read once at import, before any thread could create a file while it is
#: briefly changed to read it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
#: The modes a plain ``open`` and ``mkdir`` give (mkstemp's and mkdtemp's are private).
FILE_MODE = 0o666 & ~_UMASK
FOLDER_MODE = 0o777 & ~_UMASK
#: Where a folder cannot be synced (opened read-only, or ``fsync`` on it refused).
_FOLDERS_UNSYNCABLE = (errno.EINVAL, errno.EBADF, errno.EACCES, errno.EISDIR)


@contextlib.contextmanager
def staged(
    path: Path, *, folder: bool = False, suffix: str = ".tmp", replace: bool = True
) -> Iterator[Path]:
    """An empty file (or ``folder``) beside ``path`` to write its new version in,
    published as ``path`` when the block ends (:func:`publish`), removed if it fails.

    Args:
        path: The target; its folder must exist.
        folder: Stage a folder rather than a file.
        suffix: The end of the temporary name (Keras wants ``.keras`` on a model file).
        replace: Whether an existing ``path`` is replaced; if not, one that appears
            meanwhile is :class:`FileExistsError` and stays as it is.

    Raises:
        FileExistsError: ``replace`` is false and ``path`` exists.
    """
    prefix = f".{path.name}."
    if folder:
        new = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=path.parent))
        os.chmod(new, FOLDER_MODE)
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
        new = Path(name)
        try:
            os.fchmod(fd, FILE_MODE)  # a shared run directory stays readable to its group
        finally:
            os.close(fd)
    try:
        yield new
        publish(new, path, replace=replace)
    except BaseException:
        if new.is_dir() and not new.is_symlink():
            shutil.rmtree(new, ignore_errors=True)
        else:
            new.unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to the file ``path``, whole or not at all (:func:`staged`)."""
    with staged(path) as new, open(new, "wb") as f:
        f.write(data)


def publish(new: Path, path: Path, *, replace: bool = True) -> None:
    """Rename the finished file or folder ``new`` to ``path``, synced before and after.

    A folder replacing a folder removes the old one first (a rename cannot replace a
    folder that holds files), so a crash between the two leaves neither: callers that
    replace folders keep a pointer to the one in use (checkpoints' ``latest.json``).

    Raises:
        FileExistsError: ``replace`` is false and ``path`` exists.
    """
    sync(new)
    if not replace and os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "already exists", str(path))
    if replace and new.is_dir() and path.is_dir():
        shutil.rmtree(path)
    try:
        os.replace(new, path)
    except OSError as exc:  # a folder renamed onto one another process just made
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise FileExistsError(errno.EEXIST, "already exists", str(path)) from exc
        raise
    _sync_folder(path.parent)


def sync(path: Path) -> None:
    """Make the file ``path`` durable, or every file and folder under the folder ``path``."""
    if not path.is_dir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    for child in path.iterdir():
        if not child.is_symlink():  # a link's target is not part of what was written
            sync(child)
    _sync_folder(path)


def _sync_folder(folder: Path) -> None:
    """Make ``folder``'s entries durable; skipped where folders cannot be synced (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        if exc.errno in _FOLDERS_UNSYNCABLE:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _FOLDERS_UNSYNCABLE:
            raise
    finally:
        os.close(fd)
