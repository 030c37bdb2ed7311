"""A study's storage, shared by the processes that tune it, and the trials they leave.

By default a study lives in a journal file in its folder (``OUTPUT/tune/STUDY/journal.log``):
Optuna's :class:`~optuna.storages.JournalStorage`, which several local processes append
to safely (Optuna advises against SQLite for that). ``--storage URL`` takes any database
Optuna supports, so processes on several machines tune one study (Optuna's distributed
mode).

A process killed while it trains a trial (SIGKILL, a power cut) leaves the trial
``RUNNING`` for ever. Each trial records the process that runs it (host, pid, the
process's start time, so a reused pid is not taken for it); a process joining the
study marks the trials of dead processes of its host failed and queues their settings
again. A database's trials are watched by Optuna's heartbeat instead, which does the
same across machines.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.tune.folders import JOURNAL, LOCK

if TYPE_CHECKING:
    import optuna

#: A database's trials beat every minute; one silent for three is a dead process's.
HEARTBEAT_S, GRACE_S = 60, 180
#: The journal's lock is held for an append, milliseconds; one held this long was left
#: by a killed process, and is taken over.
LOCK_GRACE_S = 5
INSTALL = "pip install 'zoo[tune]'"


def import_optuna() -> Any:
    """Optuna, quiet, or a ZooError that says how to install it."""
    try:
        import optuna
    except ImportError:
        raise ZooError(
            "zoo tune needs Optuna, which is not installed.",
            expected="the optuna package (zoo's [tune] extra)",
            fix=INSTALL,
            got="no module named 'optuna'",
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def storage(folder: Path, url: str | None) -> Any:
    """The journal file in ``folder``, or the database at ``url``."""
    optuna = import_optuna()
    if url is None:
        from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

        folder.mkdir(parents=True, exist_ok=True)
        # Absolute: Optuna's lock is a symlink to the journal, and it follows the link to
        # see whether a lock is stale; from a relative path that link dangles, and a lock
        # left by a killed process would be waited for for ever.
        path = str(folder.resolve() / JOURNAL)
        lock = JournalFileSymlinkLock(path, grace_period=LOCK_GRACE_S)
        return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=lock))
    if url.startswith(("sqlite:", "postgresql", "mysql", "oracle", "mssql")):
        retry = optuna.storages.RetryFailedTrialCallback(max_retry=2)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=retry,
        )
    raise ZooError(
        "--storage takes a database URL Optuna supports.",
        expected="postgresql://USER:PASSWORD@HOST/DB, mysql://..., sqlite:///FILE",
        fix="leave --storage out to keep the study in a journal file in its folder",
        got=url,
    )


@contextlib.contextmanager
def readable(folder: Path, url: str | None) -> Iterator[None]:
    """Within the block, a study that cannot be read (a damaged journal file, one that
    is not Optuna's, a database that refuses) is a ZooError naming it."""
    where = url or str(folder / JOURNAL)
    try:
        yield
    except (ZooError, KeyboardInterrupt, KeyError):
        raise
    except Exception as exc:
        raise ZooError(
            f"the study in {where} cannot be read: {type(exc).__name__}: {exc}.",
            expected="a study zoo tune stored (an Optuna journal file, or database)",
            fix="start a new study with --study NAME (or another --output); "
            "a damaged journal file cannot be mended",
            got=where,
        ) from exc


@contextlib.contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold the study folder's lock: one process at a time counts trials and asks for
    one, so that ``--trials`` is the study's total across processes."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def this_process() -> dict[str, Any]:
    """Who runs a trial: what :func:`is_dead` checks."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid())}


def is_dead(process: Mapping[str, Any]) -> bool:
    """Whether the process a trial records has gone: on this host only (another host's
    cannot be seen; a database's heartbeat covers those)."""
    if process.get("host") != socket.gethostname():
        return False
    pid = process.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True
    started = _start_time(pid)
    return started is None or started != process.get("started")


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or ``None`` if there is
    none: a pid reused by another process has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return _alive_elsewhere(pid)
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive_elsewhere(pid: int) -> int | None:
    """Without /proc (macOS): 0 while the pid exists, which cannot tell reuse apart."""
    if Path("/proc/self").exists():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0
    return 0


def requeue_abandoned(study: optuna.Study) -> list[int]:
    """Mark failed the running trials of this host's dead processes, and queue every
    failed trial that no error ended (killed, interrupted) to run again, once.

    Returns the numbers of the trials queued again.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        if trial.state == TrialState.RUNNING and is_dead(trial.user_attrs.get("process", {})):
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    queued = []
    for trial in trials:
        if trial.state != TrialState.FAIL or "error" in trial.user_attrs:
            continue
        if trial.number in retried or "retry_of" in trial.user_attrs:
            continue
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
        queued.append(trial.number)
    return queued


def counted(study: optuna.Study) -> int:
    """The trials that count towards ``--trials``: finished (completed, pruned, or
    failed with an error: a setting that cannot run) or running. Queued ones do not:
    they count once a process runs them."""
    from optuna.trial import TrialState

    count = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.FAIL:
            count += "error" in trial.user_attrs
        else:
            count += trial.state != TrialState.WAITING
    return count


def running(study: optuna.Study) -> int:
    """Trials some process is training now."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
