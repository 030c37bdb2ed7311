"""Ctrl-C during a run: an epoch being saved is saved whole, and the run says what is saved.

SIGINT raises ``KeyboardInterrupt`` wherever Python happens to be. Once an epoch has
trained, the callbacks save it (best weights, checkpoint, TensorBoard, metrics.json);
:func:`deferred` holds a Ctrl-C that arrives meanwhile until they are done, so the epoch
is saved, and then stops the run. A second Ctrl-C stops it at once: every file is
written atomically, so the epoch is then lost, never half saved. Ctrl-C while an epoch
trains or validates loses that epoch: a resume runs it again. :func:`describe` words
what is saved and what is lost, for the console and metrics.json.

Test hook: with ``ZOO_TEST_SIGINT=POINT@EPOCH`` in the environment, the process sends
itself SIGINT when it reaches :func:`point` ``POINT`` in epoch ``EPOCH`` (counted over
all stages), so tests interrupt at a known place. The points, in the order a run
reaches them (see :data:`POINTS`): ``epoch.begin``, ``epoch.validate``,
``epoch.end`` (trained and validated, not yet saved), ``best.write`` (before a new best
epoch's weights), ``checkpoint.weights`` (model weights written, optimizer not),
``checkpoint.files`` (all files written, folder not yet renamed into place),
``checkpoint.latest`` (renamed, ``latest.json`` not yet updated), ``metrics.write``
(before metrics.json), then after the last epoch ``test`` and ``save`` (before
model.keras). With ``ZOO_TEST_PAUSE=POINT@EPOCH``, the process stops there instead
and sleeps until a signal ends it, so tests hold a run mid-training (SIGKILL it, or
resume it while it holds its lock). Without the variables, :func:`point` does nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

#: The environment variables of the test hooks: Ctrl-C, or a pause, at a point.
ENV = "ZOO_TEST_SIGINT"
PAUSE = "ZOO_TEST_PAUSE"
#: The named points of the test hook, in the order a run reaches them.
POINTS = (
    "epoch.begin",
    "epoch.validate",
    "epoch.end",
    "best.write",
    "checkpoint.weights",
    "checkpoint.files",
    "checkpoint.latest",
    "metrics.write",
    "test",
    "save",
)


def point(name: str, epoch: int) -> None:
    """Test hook: send this process SIGINT if ``ZOO_TEST_SIGINT`` is ``name@epoch``;
    sleep until a signal ends it if ``ZOO_TEST_PAUSE`` is."""
    assert name in POINTS, f"an undocumented point: {name}"
    here = f"{name}@{epoch}"
    if os.environ.get(ENV) == here:
        os.kill(os.getpid(), signal.SIGINT)
    while os.environ.get(PAUSE) == here:
        time.sleep(1)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold a Ctrl-C until the block ends, then raise it; a second one raises at once.

    Only where Python's own SIGINT handler is in place, in the main thread (signal
    handlers can be set nowhere else); elsewhere the block runs as it is.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        if held:
            raise KeyboardInterrupt
        held.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if held:
        raise KeyboardInterrupt


def describe(saved: int, lost: int | None, checkpoint: str | None) -> str:
    """What an interrupted run has on disk: ``interrupted in epoch 9, which is lost (a
    resume runs it again); epochs 1-8 are saved (checkpoints/epoch-0008)``.

    Args:
        saved: Epochs saved, over all stages.
        lost: The epoch that was training and is not saved, if any.
        checkpoint: Where the newest saved epoch is, relative to the run directory.
    """
    if lost is not None:
        text = f"interrupted in epoch {lost}, which is lost (a resume runs it again); "
    elif saved:
        text = f"interrupted after epoch {saved}; "
    else:
        text = "interrupted before the first epoch; "
    if not saved:
        return text + "no epoch is saved yet (a resume starts from the first)"
    epochs = "epoch 1 is" if saved == 1 else f"epochs 1-{saved} are"
    return text + f"{epochs} saved" + (f" ({checkpoint})" if checkpoint else "")
