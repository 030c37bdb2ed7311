"""A full disk, wherever zoo writes: an error that says where, how much, and how to go on.

Every writer works under a temporary name and renames when done, so a full disk leaves
nothing that looks whole. :func:`writing` turns the failure into :class:`DiskFull`, a
:class:`zoo.errors.ZooError` (exit 2) that names the path, the space it needed and the
space free; the engine adds the command that resumes the run (:meth:`DiskFull.resumable`).

One place decides what a full disk is (:func:`is_full`): an ``OSError`` with ``ENOSPC``
or ``EDQUOT`` anywhere in the exception's chain, or a library's own error that hides the
errno (h5py's ``RuntimeError`` or ``OSError`` without one, TensorFlow's
``ResourceExhaustedError`` or ``UnknownError``, zipfile's ``BadZipFile``) raised when the
target's filesystem is in fact full (``os.statvfs``: less free than the write needed, or
no free inodes). Other errors keep their traceback: they are bugs.

HDF5 is kept off a disk that can fill: once one of its writes fails, it cannot close
that file, and crashes the process as it exits (docs/architecture.md). So weights files
are built in memory and written with one plain write
(:func:`zoo.train.durability.folders.save_weights`), as Keras builds the weights of a
``.keras`` file.

Test hook: with ``ZOO_TEST_ENOSPC=POINT`` in the environment, the write at :func:`point`
``POINT`` fails as a full disk would. The points (:data:`POINTS`): ``features`` (after
the first batch of features is written), ``checkpoint`` (an epoch's weights written,
its optimizer not yet), ``model`` (before model.keras is written). Without the
variable, :func:`point` does nothing. Tests on a real small filesystem (a tmpfs) are in
``tests/test_disk_full.py``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.storage.caches import existing_folder
from zoo.storage.sizes import format_size

#: The environment variable of the test hook.
ENV = "ZOO_TEST_ENOSPC"
#: The named points of the test hook.
POINTS = ("features", "checkpoint", "model")
#: The errnos of a full disk: no space left, and a user's quota used up.
ERRNOS = (errno.ENOSPC, errno.EDQUOT)
#: Less free than this, and a library's write error is a full disk whatever it needed.
LOW = 1 << 20
#: How to go on after a full disk during a run (the engine adds the resume command).
RUN_FIX = (
    "free space on that disk (zoo cache prune --max-size SIZE shrinks the feature "
    "cache) or write elsewhere (--feature-cache-dir, --output)"
)
#: TensorFlow's errors that a failed file write becomes (by name: no import here).
_TF_ERRORS = ("ResourceExhaustedError", "UnknownError", "InternalError", "DataLossError")


def point(name: str, path: Path) -> None:
    """Test hook: fail as a full disk would if ``ZOO_TEST_ENOSPC`` is ``name``."""
    assert name in POINTS, f"an undocumented point: {name}"
    if os.environ.get(ENV) == name:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


class DiskFull(ZooError):
    """The disk filled up while ``what`` was written to ``path``."""

    def resumable(self, run_dir: Path) -> None:
        """Say how to go on once space is freed: resume ``run_dir``."""
        self.fix = f"{self.fix}, then resume the run: zoo run --resume {run_dir}"

    def unrecorded(self, record: Path) -> None:
        """Say that the failure could not be written to ``record`` (metrics.json) either."""
        self.what = f"{self.what} The failure could not be recorded in {record} (the disk is full)."


@contextlib.contextmanager
def writing(what: str, path: Path, needed: Callable[[], int], fix: str = RUN_FIX) -> Iterator[None]:
    """Turn a full disk while the block writes ``what`` to ``path`` into :class:`DiskFull`;
    ``needed()`` estimates the bytes it takes (asked only then). ``fix`` says how to go on."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as exc:
        size = needed()
        if not is_full(exc, path, size):
            raise
        raise full(what, path, size, fix) from exc


def is_full(exc: BaseException, path: Path, needed: int | None = None) -> bool:
    """Whether ``exc``, raised while writing to ``path``, is a full disk: the one place
    that decides. A library's error without an errno counts when the filesystem of
    ``path`` has less free than ``needed`` (and than :data:`LOW`), or no free inodes."""
    chain = list(_chain(exc))
    if any(isinstance(e, DiskFull) or getattr(e, "errno", None) in ERRNOS for e in chain):
        return True
    if not any(_hides_errno(e) for e in chain):
        return False
    free, inodes = _free(path)
    return free < max(needed or 0, LOW) or inodes == 0


def recognized(exc: BaseException, path: Path | None) -> BaseException:
    """``exc``, or the :class:`DiskFull` it is when it is a full disk that no
    :func:`writing` named: a write under ``path`` (such as a figure), named by the path
    the error gives (an ``OSError``'s file name, a :class:`ZooError`'s value)."""
    if path is None or isinstance(exc, DiskFull) or not isinstance(exc, Exception):
        return exc
    if not is_full(exc, path):
        return exc
    names = (getattr(e, "filename", None) or getattr(e, "got", None) for e in _chain(exc))
    where = next((Path(name) for name in names if isinstance(name, str)), path)
    return full("a file of the run", where, None, atomic=False)


def full(
    what: str, path: Path, needed: int | None, fix: str = RUN_FIX, *, atomic: bool = True
) -> DiskFull:
    """The error of a full disk while ``what`` was written to ``path`` (``atomic``: by a
    writer that removed what it had written)."""
    folder = existing_folder(path)
    free, inodes = _free(folder)
    wanted = f"about {format_size(needed)}" if needed else "more"
    kept = "; nothing partial was kept" if atomic else ""
    files = " but room for no more files (no free inodes)" if inodes == 0 else ""
    return DiskFull(
        f"the disk is full: writing {what} to {path} failed{kept}.",
        expected=f"{wanted} free for it; {folder} has {format_size(free)} free{files}",
        fix=fix,
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is not None and id(e) not in seen:
            seen.add(id(e))
            yield e
            todo += [e.__cause__, e.__context__]


def _hides_errno(exc: BaseException) -> bool:
    """A library's error that a full disk can become, with no errno to tell."""
    if isinstance(exc, OSError):
        return exc.errno in (None, errno.EIO)
    if isinstance(exc, RuntimeError | zipfile.BadZipFile):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__ if cls.__module__.startswith("tensorflow")}
    return bool(names.intersection(_TF_ERRORS))


def _free(path: Path) -> tuple[int, int | None]:
    """Bytes free to this user on the filesystem of ``path``, and free inodes
    (``None`` where the filesystem does not count them)."""
    found = os.statvfs(existing_folder(path))
    return found.f_bavail * found.f_frsize, found.f_favail if found.f_files else None


def variable_bytes(*holders: Any) -> Callable[[], int]:
    """The bytes of the variables of ``holders`` (models, optimizers), and 64 KB for the
    files' own structure: about what a checkpoint of them takes on disk."""
    return lambda: sum(v.numpy().nbytes for h in holders for v in h.variables) + 65536
