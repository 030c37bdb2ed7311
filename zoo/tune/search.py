"""``zoo tune``'s search: trials until the study has its total, then the winner.

:func:`tune` joins the study (creating it, or checking that it searches what this
command asks), queues again what killed processes left, then runs trials one at a time
until the study holds ``--trials`` of them (counting every process's) or ``--timeout``
passes. When no trial is running any more, one process ends the study (:func:`finish`):
the leading trials are repeated with other seeds (``--repeats``), the best by its mean
is run once more with the test split scored and its model written (the only test score
of the study), its recipe is written, and the leaderboard and its figure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import RunFailed, ZooError
from zoo.registry import Registry
from zoo.runconfig import Resolved, resolve_run
from zoo.train.engine import EngineOptions
from zoo.train.events import Callback
from zoo.tune import leaderboard, recipe, studies
from zoo.tune.folders import FINAL, REPEATS, RUNS
from zoo.tune.space import Draw, Space
from zoo.tune.trial import Outcome, run_trial, summary

#: The leading trials ``--repeats`` reruns.
LEADING = 3
#: Trials before the pruner judges, and epochs into a trial before it may stop one.
STARTUP_TRIALS, WARMUP_EPOCHS = 5, 1


@dataclass(frozen=True)
class Tuning:
    """What ``zoo tune`` was asked.

    Args:
        registry: The loaded registry.
        dataset: The dataset's name.
        space: What trials draw.
        settings: Run settings fixed for every trial (the command line's).
        sets: ``--set`` assignments fixed for every trial.
        folder: The study's folder (``OUTPUT/tune/STUDY``).
        name: The study's name.
        storage: A database URL, or ``None`` for the journal file in ``folder``.
        trials: The study's total of trials.
        timeout: Seconds after which this process starts no more trials.
        metric: ``val_accuracy`` or ``val_loss``.
        repeats: Seeds each leading trial is rerun with.
        options: How the runs run.
        command: The command line, for the runs' config.json.
    """

    registry: Registry
    dataset: str
    space: Space
    settings: Mapping[str, Any]
    sets: tuple[str, ...]
    folder: Path
    name: str
    storage: str | None
    trials: int
    timeout: float | None
    metric: str
    repeats: int
    options: EngineOptions
    command: tuple[str, ...] = ()

    def setup(self) -> dict[str, Any]:
        """What a study is, as it keeps it: a process joining must ask the same."""
        return {
            "dataset": self.dataset,
            "space": self.space.to_dict(),
            "settings": {k: v for k, v in sorted(self.settings.items()) if v is not None},
            "sets": list(self.sets),
            "metric": self.metric,
        }

    def resolve(self, draw: Draw, seed_offset: int = 0) -> Resolved:
        """The run of ``draw``: the fixed settings, then the drawn ones."""
        settings = {**self.settings, **draw.settings}
        if settings.get("monitor") is None:
            settings["monitor"] = self.metric  # the epoch kept is the one the study ranks
        sets = [*self.sets, *draw.sets]
        if seed_offset:
            base = resolve_run(self.registry, self._names(draw), settings=settings, sets=sets)
            settings["seed"] = base.config.seed + seed_offset
            drawn = base.config.dataset.params.get("seed")
            if isinstance(drawn, int):  # the dataset's draw of images, or its split
                sets.append(f"dataset.seed={drawn + seed_offset}")
        return resolve_run(self.registry, self._names(draw), settings=settings, sets=sets)

    def _names(self, draw: Draw) -> tuple[str, str, str]:
        return (self.dataset, draw.backbone, draw.head)


class Shown(Callback):
    """What ``zoo tune`` shows: each trial's line, the leaderboard (the console's)."""

    def trial_ended(
        self, number: int, done: str, draw: Draw, outcome: Outcome | None, error: str | None
    ) -> None:
        """Trial ``number`` has ended: ``outcome``, or the ``error`` that ended it;
        ``done`` says how far the study is (``3 of 20``)."""

    def repeated(self, number: int, seed_offset: int, value: float | None) -> None:
        """A leading trial was rerun with another seed."""


def tune(job: Tuning, shown: Shown) -> dict[str, Any]:
    """Run the study's trials, then end it if no trial is left running. Returns what
    :func:`finish` returned, or ``{"ended": False, ...}`` while others still train."""
    optuna = studies.import_optuna()
    study = _join(job, optuna)
    deadline = time.monotonic() + job.timeout if job.timeout else None
    while deadline is None or time.monotonic() < deadline:
        with contextlib.ExitStack() as held:  # the lock, released once the trial is asked for
            held.enter_context(studies.exclusive(job.folder))
            if job.storage is None:  # a database's heartbeat does it there
                studies.requeue_abandoned(study)  # a process that died since counts no more
            if studies.counted(study) >= job.trials:
                break
            objective = _objective(job, shown, held.close, study)
            study.optimize(objective, n_trials=1, catch=(ZooError, RunFailed), gc_after_trial=False)
    with studies.exclusive(job.folder):
        running = studies.running(study)
        if running:
            return {"ended": False, "running": running, "study": job.name}
        return finish(job, study, shown)


def _join(job: Tuning, optuna: Any) -> Any:
    """Open or create the study, check it searches what ``job`` asks, and seed this
    process's sampler apart from the others'."""
    direction = "maximize" if leaderboard.METRICS[job.metric] else "minimize"
    with studies.exclusive(job.folder), studies.readable(job.folder, job.storage):
        study = optuna.create_study(
            storage=studies.storage(job.folder, job.storage),
            study_name=job.name,
            direction=direction,
            load_if_exists=True,
            pruner=optuna.pruners.MedianPruner(STARTUP_TRIALS, WARMUP_EPOCHS),
        )
        setup = study.user_attrs.get("setup")
        if setup is None:
            study.set_user_attr("setup", job.setup())
            for backbone in job.space.backbones:  # each backbone's first trial comes first
                study.enqueue_trial({"backbone": backbone})
        elif setup != job.setup():
            raise _other_study(job, setup)
        joined = study.user_attrs.get("processes", 0)
        joined = joined if isinstance(joined, int) and joined >= 0 else 0
        study.set_user_attr("processes", joined + 1)
    seed = int(job.settings.get("seed") or 0) + joined  # two processes draw apart
    study.sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS)
    return study


def _other_study(job: Tuning, setup: Mapping[str, Any]) -> ZooError:
    differing = sorted(k for k in setup if setup.get(k) != job.setup().get(k))
    return ZooError(
        f"the study '{job.name}' in {job.folder} searches something else: its "
        f"{', '.join(differing)} differ from this command's.",
        expected="the same dataset, backbones, heads, searched and fixed settings and "
        "metric as the command that started it",
        fix="repeat the first command to continue the study, or start another with --study NAME",
        got={k: setup.get(k) for k in differing},
    )


def _objective(job: Tuning, shown: Shown, release: Callable[[], None], study: Any) -> Any:
    def objective(trial: Any) -> float:
        release()  # the trial is asked for: it counts now
        trial.set_user_attr("process", studies.this_process())
        draw = job.space.draw(trial)
        total = job.trials
        try:
            outcome = run_trial(
                job.resolve(draw),
                folder=job.folder / RUNS,
                metric=job.metric,
                options=job.options,
                reporter=shown,
                trial=trial,
                command=job.command,
            )
        except (ZooError, RunFailed) as exc:
            trial.set_user_attr("error", _first_line(exc))
            shown.trial_ended(trial.number, _done(study, total), draw, None, _first_line(exc))
            raise
        for key, value in summary(outcome).items():
            trial.set_user_attr(key, value)
        shown.trial_ended(trial.number, _done(study, total), draw, outcome, None)
        if outcome.pruned is not None:
            import optuna

            raise optuna.TrialPruned(outcome.pruned)
        if outcome.value is None:
            raise RunFailed(f"the run kept no epoch with {job.metric}")
        return outcome.value

    return objective


def _done(study: Any, total: int) -> str:
    return f"{studies.counted(study)} of {total}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def finish(job: Tuning, study: Any, shown: Shown) -> dict[str, Any]:
    """End the study: repeats, the winner's final run, its recipe, the leaderboard."""
    board = leaderboard.rows(study, job.metric)
    done = len([r for r in board if r.state != "fail"])
    ended = study.user_attrs.get("ended")
    ended = ended if isinstance(ended, dict) else {}
    written = job.folder / recipe.FILE
    if ended.get("trials") == done and ended.get("recipe") == str(written) and written.is_file():
        return {**ended, "ended": True, "rows": board}  # ended already, by this study's trials
    leading = [r for r in board if r.rank is not None][:LEADING]
    if not leading:
        raise ZooError(
            f"the study '{job.name}' has no completed trial to choose from.",
            expected="at least one trial that completed",
            fix="read the errors in the leaderboard (zoo tune --report), then run more trials",
            got=f"{len(board)} trials: " + ", ".join(sorted({r.state for r in board})),
        )
    if job.repeats:
        _repeat(job, study, leading, shown)
        board = leaderboard.rows(study, job.metric)
    chosen = next(r for r in board if r.rank == 1)
    draw = _draw_of(job, study, chosen.trial)
    resolved = job.resolve(draw)
    final = run_trial(
        resolved,
        folder=job.folder / FINAL,
        metric=job.metric,
        options=job.options,
        reporter=shown,
        command=job.command,
        final=True,
    )
    note = (
        f"zoo tune, study {job.name}: trial {chosen.trial} of {done}, "
        f"{job.metric} {chosen.score:.4g}"
        + (f" (mean of {len(chosen.repeats)} seeds)" if chosen.repeats else "")
        + f"\nreproduce: zoo run --recipe {job.folder / recipe.FILE}"
    )
    written = recipe.write(job.folder, job.name, resolved.config, note)
    ended = {
        "trials": done,
        "chosen": chosen.trial,
        "metric": job.metric,
        "value": chosen.value,
        "score": chosen.score,
        "spread": chosen.spread,
        "final_run": str(final.run_dir),
        "final_value": final.value,
        "test": final.test,
        "recipe": str(written),
        "recipe_name": recipe.name_for(job.name),
    }
    study.set_user_attr("ended", ended)
    figure = leaderboard.write(job.folder, board, {"study": job.name, **ended}, job.metric)
    return {**ended, "ended": True, "rows": board, "figure": str(figure)}


def _repeat(job: Tuning, study: Any, leading: Sequence[leaderboard.Row], shown: Shown) -> None:
    """Rerun each leading trial with ``job.repeats`` other seeds; keep every value."""
    stored = study.user_attrs.get("repeats")
    repeats = dict(stored) if isinstance(stored, dict) else {}
    for row in leading:
        values: list[float | None] = list(row.repeats) or [row.value]
        draw = _draw_of(job, study, row.trial)
        for offset in range(len(values), job.repeats + 1):
            outcome = run_trial(
                job.resolve(draw, seed_offset=offset),
                folder=job.folder / REPEATS,
                metric=job.metric,
                options=job.options,
                reporter=shown,
                command=job.command,
            )
            shown.repeated(row.trial, offset, outcome.value)
            if outcome.value is not None:
                values.append(outcome.value)
            repeats[str(row.trial)] = values
            study.set_user_attr("repeats", repeats)  # kept as it goes: an interrupted end resumes


def _draw_of(job: Tuning, study: Any, number: int) -> Draw:
    """The draw trial ``number`` made, replayed from its stored parameters."""
    from optuna.trial import FixedTrial

    params = dict(study.get_trials(deepcopy=False)[number].params)
    dropout = frozenset([params["head"]]) if "dropout" in params else frozenset()
    space = dataclasses.replace(job.space, with_dropout=dropout)
    return space.draw(FixedTrial(params, number))
