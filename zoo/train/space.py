"""A full disk while a run writes: an error that says where, how much, and how to go on.

Extracting features, writing a checkpoint (or a best epoch) and saving the model each
write under a temporary name and rename when done, so a full disk (``ENOSPC``) leaves
nothing that looks whole; :func:`writing` turns the ``OSError`` into :class:`DiskFull`,
a :class:`zoo.errors.ZooError` (exit 2) that names the path, the space it needed and the
space free. The engine adds the command that resumes the run (:meth:`DiskFull.resumable`).

Test hook: with ``ZOO_TEST_ENOSPC=POINT`` in the environment, the write at :func:`point`
``POINT`` fails as a full disk would. The points (:data:`POINTS`): ``features`` (after
the first batch of features is written), ``checkpoint`` (an epoch's weights written,
its optimizer not yet), ``model`` (before model.keras is written). Without the
variable, :func:`point` does nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from zoo.errors import ZooError
from zoo.params import format_size

#: The environment variable of the test hook.
ENV = "ZOO_TEST_ENOSPC"
#: The named points of the test hook.
POINTS = ("features", "checkpoint", "model")


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


@contextlib.contextmanager
def writing(what: str, path: Path, needed: Callable[[], int]) -> Iterator[None]:
    """Turn a full disk while the block writes ``what`` to ``path`` into :class:`DiskFull`;
    ``needed()`` estimates the bytes it takes (asked only then)."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise full(what, path, needed()) from exc


def full(what: str, path: Path, needed: int) -> DiskFull:
    folder = path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    return DiskFull(
        f"the disk is full: writing {what} to {path} failed; nothing partial was kept.",
        expected=f"about {format_size(needed)} free for it; {folder} has {format_size(free)} free",
        fix="free space on that disk (zoo cache prune --max-size SIZE shrinks the feature "
        "cache) or write elsewhere (--feature-cache-dir, --output)",
    )
