"""One writer per run directory: the process training a run holds a lock on it.

``zoo run`` locks the run directory it creates, and ``zoo run --resume`` the one it
reopens before reading it, so a resume of a run that is still training is refused,
naming the process (pid, host, since when), instead of two processes writing one
directory. The lock is ``fcntl.flock`` on ``RUN/train.lock``: the kernel drops it when
the process ends, however it ends, so the lock of a process killed with SIGKILL is
simply taken over. The file also says who holds it, and a clean end empties it: a
file that still names a process once its lock is free was left by one that was
killed, and the resume says so (:data:`STALE`).

Readers (``zoo predict``, ``evaluate``, ``export``, ``compare``) take no lock: a run
writes every file atomically. On several workers only the chief writes, and locks.
The file is data like any other in a run directory: never followed if it is a link,
read up to a bound, its text printed without control characters.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import socket
import stat
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.storage import runs

FILE = "train.lock"
#: The code of the warning a resume gives when it takes over a killed process's lock.
STALE = "stale_lock"
#: More than a holder's JSON needs; a bigger file is not zoo's.
_MAX_BYTES = 4096
#: A file system without working locks (NFS without lockd, Lustre without -o flock).
_NO_LOCKS = frozenset({errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL})

#: The lock files this process holds, by run directory: their open descriptors.
_held: dict[Path, int] = {}


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a run directory's lock, as its lock file says."""

    pid: int
    host: str
    since: str

    def describe(self) -> str:
        where = "this machine" if self.host == socket.gethostname() else self.host
        return f"process {self.pid} on {where}, since {self.since}"

    def to_json(self) -> dict[str, str | int]:
        return {"pid": self.pid, "host": self.host, "since": self.since}


def new_run_dir(root: Path, name: str, config: Mapping[str, Any]) -> Path:
    """A new run directory (:func:`zoo.storage.runs.new_run_dir`), locked by this process, with
    ``config`` as its config.json.

    If locking or writing config.json fails (a full disk), the directory is released and
    removed, so that no run which cannot resume is left behind; only if it holds nothing
    but the lock file and temporary files (``.NAME.*``, which zoo's writers remove).
    """
    run_dir = runs.new_run_dir(root, name)
    try:
        hold(run_dir)
        runs.write_json(run_dir / runs.CONFIG, config)
    except BaseException:
        release(run_dir)
        _remove_begun(run_dir)
        raise
    return run_dir


def _remove_begun(run_dir: Path) -> None:
    """Remove the run directory this process just created, if nothing else is in it."""
    with contextlib.suppress(OSError):  # what cannot be removed stays, harmless
        found = list(run_dir.iterdir())
        if all(p.name == FILE or p.name.startswith(".") for p in found):
            for path in found:
                path.unlink()
            run_dir.rmdir()


def hold(run_dir: Path) -> Holder | None:
    """Lock ``run_dir`` for this process until :func:`release` (or until it ends).

    Returns:
        The process whose lock was taken over: one that ended without releasing it
        (killed); ``None`` if the lock was free, or already this process's.

    Raises:
        ZooError: another process holds the lock, or the lock file cannot be used.
    """
    key = run_dir.resolve()
    if key in _held:
        return None
    fd = _open(run_dir / FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read(fd)
        os.close(fd)
        raise _busy(run_dir, holder) from None
    except OSError as exc:
        os.close(fd)
        if exc.errno not in _NO_LOCKS:
            raise
        warnings.warn(
            f"the file system of {run_dir} has no file locks ({errno.errorcode[exc.errno]}): "
            "zoo cannot stop a second process from training this run at the same time; "
            "train it from one process only",
            stacklevel=2,
        )
        return None
    stale = _read(fd)
    now = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    text = json.dumps(Holder(os.getpid(), socket.gethostname(), now).to_json())
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode() + b"\n", 0)
    except OSError:
        pass  # a full disk: the lock holds all the same, its file just names nobody
    _held[key] = fd
    return stale


@contextlib.contextmanager
def released_on_error() -> Iterator[None]:
    """Release this process's locks if the block raises (Ctrl-C included)."""
    try:
        yield
    except BaseException:
        release()
        raise


def release(run_dir: Path | None = None) -> None:
    """Release this process's lock on ``run_dir`` (default: on every run directory),
    emptying its file first: nobody holds it."""
    keys = [run_dir.resolve()] if run_dir is not None else list(_held)
    for key in keys:
        fd = _held.pop(key, None)
        if fd is None:
            continue
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # then the next holder reads it as stale: harmless
        finally:
            os.close(fd)  # which drops the lock


def _open(path: Path) -> int:
    """The lock file, created if need be; never through a link, only a regular file."""
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    remove = f"remove {path} once no process trains the run, then run the command again"
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # a full disk, which the caller reports as such
        if path.is_symlink():
            raise _unusable(path, "is a symbolic link", remove) from None
        fix = f"make {path.parent} writable by you, or copy it and resume the copy"
        raise _unusable(path, f"cannot be opened: {exc.strerror}", fix) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _unusable(path, "is not a regular file", remove)
    return fd


def _read(fd: int) -> Holder | None:
    """The holder a lock file names, if it names one (it is empty when none does)."""
    try:
        data = json.loads(os.pread(fd, _MAX_BYTES, 0).decode("utf-8"))
        pid, host, since = data["pid"], data["host"], data["since"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(pid, int) or not isinstance(host, str) or not isinstance(since, str):
        return None
    return Holder(pid, _printable(host), _printable(since))


def _printable(text: str) -> str:
    return "".join(c for c in text if c.isprintable())[:100]


def _busy(run_dir: Path, holder: Holder | None) -> ZooError:
    who = holder.describe() if holder else f"a process that {run_dir / FILE} does not name"
    if holder is None:
        stop = "wait for it to end"
    elif holder.host == socket.gethostname():
        stop = f"wait for it to end, or stop it (kill -INT {holder.pid} saves the epoch)"
    else:
        stop = f"wait for it to end, or stop it on {holder.host}"
    return ZooError(
        f"the run {run_dir} is being trained by {who}.",
        expected="one process at a time training a run directory",
        fix=f"{stop}, then resume: zoo run --resume {run_dir}; or start a new run to train "
        "the same settings alongside",
        got=str(run_dir),
    )


def _unusable(path: Path, what: str, fix: str) -> ZooError:
    return ZooError(
        f"the run's lock file {path} {what}.",
        expected=f"{FILE} as zoo writes it (a regular file naming who trains the run), or none",
        fix=fix,
        got=str(path),
    )
