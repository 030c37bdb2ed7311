"""``zoo.run``: train one resolved run; the steps are :mod:`zoo.train.protocol`'s, in order.

:func:`run` reopens a run to resume (its lock taken, its directory checked) before
TensorFlow loads, so one that cannot continue says so at once; then the protocol,
:func:`zoo.train.protocol.run_protocol`, sets up, trains, tests and saves, telling
callbacks (:mod:`zoo.train.events`) what happens. This module does not import
TensorFlow: it loads with the protocol.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from zoo.runconfig import Resolved
from zoo.train.durability import lock
from zoo.train.durability.resume import reopen
from zoo.train.events import Callback
from zoo.train.reporter import ConsoleReporter
from zoo.train.state import EngineOptions, Run, RunResult

__all__ = ["EngineOptions", "RunResult", "run"]


def run(
    resolved: Resolved,
    *,
    output: Path = Path("runs"),
    dry_run: bool = False,
    find_lr: bool = False,
    command: Sequence[str] | None = None,
    options: EngineOptions | None = None,
    resume: Path | None = None,
    callbacks: Sequence[Callback] = (),
    reporter: Callback | None = None,
) -> RunResult:
    """Build, train and evaluate ``resolved``; write a new run directory under ``output``.

    Args:
        resume: An interrupted run's directory to continue (``zoo run --resume``).
        find_lr: Run the learning-rate range test instead of training
            (``zoo run --find-lr``): ``metrics["lr_find"]`` holds the suggested rate and
            the folder of its curve and figure; no run directory is made.
        callbacks: More callbacks to tell what happens (after zoo's own).
        reporter: What shows the run; by default the console
            (:class:`zoo.train.reporter.ConsoleReporter`).

    Raises:
        ZooError: a user error (data missing, bad combination, a run directory that
            cannot resume) before training starts.
        RunFailed: training stopped on a NaN loss; the run directory says so.
        RunInterrupted: Ctrl-C; what is saved was reported, and the run is resumable.
    """
    options = options or EngineOptions()
    with lock.released_on_error():  # the lock reopen takes, until the protocol holds it
        reopened = reopen(resume, resolved.config, options.strategy) if resume else None
        from zoo.train.protocol import run_protocol  # loads TensorFlow

        state = Run(
            resolved,
            options,
            reopened,
            output=output,
            command=list(command or sys.argv),
            dry_run=dry_run,
            find_lr=find_lr,
            callbacks=callbacks,
            reporter=reporter or ConsoleReporter(),
        )
    return run_protocol(state)
