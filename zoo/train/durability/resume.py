"""Reopening a run directory to resume it: what is intact, what is damaged, what happens.

``zoo run --resume RUN`` checks the directory before TensorFlow loads, so a run that
cannot continue says so at once, and one that can says what it found (warnings, shown
and kept in metrics.json). ``config.json`` is read first, by the command.

- The run's lock first (:mod:`zoo.train.durability.lock`; the chief's, on several workers): a run
  another process still trains is not touched; a lock left by a killed process is
  taken over, with a warning naming it.
- Symbolic links leading out of the run directory (a run copied from someone else may
  hold them; ``best/`` linked to a folder of yours would have its subfolders replaced):
  none is followed, the run is refused naming them.

- ``metrics.json`` says ``completed``: nothing to resume. Damaged, or missing although
  a checkpoint exists: the history comes from the checkpoint; the record of earlier
  sessions (timings, resumes, warnings) is lost.
- ``checkpoints/``: the newest intact checkpoint is the one resumed from. Newer ones
  found damaged are named with what is wrong, and their epochs run again. None intact
  although epochs were recorded: the run cannot resume, and the message names each
  damaged checkpoint, or the missing folder. ``latest.json`` missing or damaged: a
  note; zoo finds checkpoints by their folder names.
- ``best/`` (``--keep best``): damaged or missing although a checkpoint exists: the best
  epoch so far is lost, and the checkpoint's epoch counts as the best so far
  (:mod:`zoo.train.durability.best`).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.runconfig import RunConfig
from zoo.storage import confine, runs
from zoo.train import distribute
from zoo.train.durability import best, checkpoints, lock
from zoo.train.durability.checkpoints import Checkpoint, Damaged
from zoo.train.events import RunWarning


@dataclass(frozen=True)
class Reopened:
    """A run directory to resume: where it continues from, and what was found damaged.

    Args:
        run_dir: The run directory.
        checkpoint: The newest intact checkpoint; ``None`` before the first epoch ended.
        best: The best epoch so far (``--keep best``).
        previous: metrics.json as the interrupted run left it (empty if unreadable).
        warnings: What was damaged, and what the resume does about it.
    """

    run_dir: Path
    checkpoint: Checkpoint | None
    best: best.Best | None
    previous: dict[str, Any]
    warnings: tuple[RunWarning, ...] = ()


def reopen(run_dir: Path, config: RunConfig, strategy: str = "auto") -> Reopened:
    """Lock ``run_dir`` (if this process writes it with ``strategy``), then check it for
    resuming with ``config`` (its own, from config.json). The lock is held until
    :func:`zoo.train.durability.lock.release`, and released here if the run cannot resume.

    Raises:
        ZooError: the run holds symbolic links leading outside it, another process
            trains it, it completed, or it recorded epochs but has no intact checkpoint.
    """
    stale = lock.hold(run_dir) if distribute.writes_run(strategy) else None
    try:
        reopened = _reopen(run_dir, config)
    except BaseException:
        lock.release(run_dir)
        raise
    if stale is None:
        return reopened
    return replace(reopened, warnings=(_taken_over(run_dir, stale), *reopened.warnings))


def _no_links_out(run_dir: Path) -> None:
    links = confine.links_out(run_dir)
    if links:
        shown = "; ".join(f"{link.relative_to(run_dir)} -> {os.readlink(link)}" for link in links)
        raise ZooError(
            f"the run {run_dir} holds symbolic links that lead outside it ({shown}); "
            "resuming writes into the run directory, so zoo writes nothing.",
            expected="a run directory whose files and folders are its own",
            fix="replace each link by a copy of what it points at (or remove it), then "
            "resume again",
            got=[str(link) for link in links],
        )


def _reopen(run_dir: Path, config: RunConfig) -> Reopened:
    _no_links_out(run_dir)
    record = runs.read_run(run_dir)
    if record.status == "completed":
        raise ZooError(
            f"the run {run_dir} is already completed; there is nothing to resume.",
            expected="a run that was interrupted or killed",
            fix=_completed_fix(record, config),
            got=str(run_dir),
        )
    checkpoint, damaged = checkpoints.find(run_dir)
    if checkpoint is None and (damaged or record.history):
        raise _cannot_resume(record, damaged)
    warnings = [
        *_record_lost(record, checkpoint),
        *_fell_back(run_dir, damaged, checkpoint),
        *_pointer(run_dir, checkpoint),
    ]
    kept = None
    if config.keep == "best" and checkpoint is not None:
        kept, lost = _best_so_far(run_dir, checkpoint, config.monitor)
        warnings += lost
    return Reopened(run_dir, checkpoint, kept, dict(record.metrics), tuple(warnings))


def _completed_fix(record: runs.RunRecord, config: RunConfig) -> str:
    """Commands that work on a completed run: its results, or a new run like it (the
    command that started it, as config.json records it)."""
    command = list(record.config.get("command") or [])
    if not command or "--resume" in command:
        named = ["--recipe", config.recipe] if config.recipe else [c.name for c in config.choices]
        command = ["zoo", "run", *named]
    return (
        f"see its results with zoo evaluate {shlex.quote(str(record.path))}; or train it "
        f"again in a new run: {shlex.join(command)}"
    )


def _taken_over(run_dir: Path, stale: lock.Holder) -> RunWarning:
    return RunWarning(
        lock.STALE,
        f"{run_dir / lock.FILE} names {stale.describe()}, which ended without releasing it "
        "(it was killed, or its machine stopped); this process takes the run over.",
        "none needed, if that process is gone; if it still runs on another machine, the "
        "run's folder is shared without working locks: stop one of them",
    )


def _cannot_resume(record: runs.RunRecord, damaged: list[Damaged]) -> ZooError:
    folder = record.path / checkpoints.FOLDER
    if damaged:
        found = "; ".join(f"{d.path.name}: {d.problem}" for d in damaged)
        what = f"every checkpoint in {folder} is damaged ({found})"
        restore = f"restore {folder} from a copy of the run directory"
    else:
        epochs = len(record.history)
        what = f"it recorded {epochs} epoch{'s' * (epochs != 1)} but {folder} holds no checkpoint"
        restore = f"put {folder} back (was it moved?)"
    command = " ".join(record.config.get("command") or ["zoo", "run", "..."])
    return ZooError(
        f"the run {record.path} cannot be resumed: {what}.",
        expected=f"an intact checkpoint in {folder}",
        fix=f"{restore}; or train it again from the first epoch: {command}",
        got=str(record.path),
    )


def _record_lost(record: runs.RunRecord, checkpoint: Checkpoint | None) -> list[RunWarning]:
    note = record.damage_note(runs.METRICS)
    if note is None and (checkpoint is None or (record.path / runs.METRICS).exists()):
        return []
    note = note or f"{record.path / runs.METRICS} is missing"
    history = (
        f"its history is read from {checkpoint.path.name}"
        if checkpoint
        else "no checkpoint: the run starts from its first epoch"
    )
    return [
        RunWarning(
            "metrics_lost",
            f"{note}. It is written anew ({history}); the record of earlier sessions "
            "(timings, resumes, warnings) is lost.",
            "none needed to continue; to keep that record, restore metrics.json from a copy "
            "of the run directory before resuming",
        )
    ]


def _fell_back(
    run_dir: Path, damaged: list[Damaged], checkpoint: Checkpoint | None
) -> list[RunWarning]:
    if not damaged or checkpoint is None:
        return []
    newest = int(damaged[0].path.name.removeprefix("epoch-"))
    again = checkpoint.epoch + 1
    epochs = f"epoch {again} runs" if newest == again else f"epochs {again}-{newest} run"
    found = "; ".join(f"{d.path} is damaged: {d.problem}" for d in damaged)
    return [
        RunWarning(
            "checkpoint_damaged",
            f"{found}. Resuming from the older {checkpoint.path.name} instead, so {epochs} again.",
            "none needed: a damaged checkpoint is replaced when its epoch is saved again",
        )
    ]


def _pointer(run_dir: Path, checkpoint: Checkpoint | None) -> list[RunWarning]:
    if checkpoint is None:
        return []
    _, problem = runs.json_problem(run_dir / checkpoints.FOLDER / checkpoints.LATEST)
    if problem is None:
        return []
    return [
        RunWarning(
            "checkpoint_pointer",
            f"{run_dir / checkpoints.FOLDER / checkpoints.LATEST} {problem}; zoo finds "
            f"checkpoints by their folders and resumes from {checkpoint.path.name}.",
            "none needed: it is written again after the next epoch",
        )
    ]


def _best_so_far(
    run_dir: Path, checkpoint: Checkpoint, monitor: str
) -> tuple[best.Best | None, list[RunWarning]]:
    """The best epoch kept so far; if ``best/`` is damaged, the checkpoint's epoch."""
    found, problem = best.inspect(run_dir)
    if found is not None:
        return found, []
    state = checkpoint.state
    row = next((r for r in state.history if r.get("epoch") == state.epoch), {})
    value = row.get(monitor)
    seed = None
    if isinstance(value, int | float):
        seed = best.Best(
            state.epoch, state.stage, monitor, value, state.weights, checkpoint.path, state.epoch
        )
    problem = problem or f"{best.FOLDER}/ is missing"
    warning = RunWarning(
        "best_lost",
        f"{run_dir}/{problem}. The best epoch so far cannot be restored: the run keeps the "
        f"best of epoch {state.epoch} (its checkpoint) and the epochs after it.",
        "none needed to continue; to choose from every epoch, restore best/ from a copy of "
        "the run directory before resuming",
    )
    return seed, [warning]
