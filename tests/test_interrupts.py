"""Ctrl-C tells the truth: the message names exactly what is on disk, and a resume runs
exactly the epochs that were not saved (``zoo/train/durability/interrupts.py``)."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import TINY_RUN, run_zoo

from zoo.train.durability import checkpoints
from zoo.train.durability.interrupts import ENV, POINTS, deferred, describe

# --- Holding a Ctrl-C while an epoch is saved -------------------------------------------


@pytest.fixture(autouse=True)
def ctrl_c_raises() -> Iterator[None]:
    """Python's own SIGINT handler, as in a terminal (a background job ignores SIGINT)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_a_ctrl_c_while_an_epoch_is_saved_waits_until_it_is_saved():
    done = []

    with pytest.raises(KeyboardInterrupt), deferred():
        ctrl_c()
        done.append("saved")

    assert done == ["saved"]


def test_a_second_ctrl_c_stops_at_once():
    done = []

    with pytest.raises(KeyboardInterrupt), deferred():
        ctrl_c()
        ctrl_c()
        done.append("saved")

    assert done == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize(
    ("saved", "lost", "text"),
    [
        (0, 1, "interrupted in epoch 1, which is lost (a resume runs it again); "
               "no epoch is saved yet (a resume starts from the first)"),
        (1, None, "interrupted after epoch 1; epoch 1 is saved (checkpoints/epoch-0001)"),
        (8, 9, "interrupted in epoch 9, which is lost (a resume runs it again); "
               "epochs 1-8 are saved (checkpoints/epoch-0008)"),
    ],
)  # fmt: skip
def test_the_message_names_what_is_saved_and_what_is_lost(saved, lost, text):
    assert describe(saved, lost, f"checkpoints/epoch-{saved:04d}") == text


# --- Interrupting a real `zoo run` at named points, resuming each time ------------------

RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--epochs", "3"]

#: One run, interrupted again after each resume: where SIGINT lands, the epochs then
#: saved on disk, and the epoch lost (training when it came), if any.
CHAIN = [
    ("epoch.begin@1", 0, 1),
    ("best.write@1", 1, None),  # held until epoch 1 is saved
    ("checkpoint.weights@2", 2, None),  # held until the checkpoint is finished
    ("epoch.end@3", 2, 3),  # trained and validated, not yet saved: lost
    ("checkpoint.latest@3", 3, None),  # renamed into place, latest.json not yet written
]


def epochs_trained(stderr: str) -> list[int]:
    """The epochs whose progress line a process printed (it prints one per saved epoch)."""
    return [int(n) for n in re.findall(r"^train epoch (\d+)/3:", stderr, re.MULTILINE)]


def test_every_interruption_names_what_is_on_disk_and_resuming_runs_exactly_the_rest(
    isolated: Path,
):
    assert {point.split("@")[0] for point, _, _ in CHAIN} <= set(POINTS)
    run_dir: Path | None = None
    before = 0
    for point, saved, lost in CHAIN:
        args = ["run", "--resume", str(run_dir)] if run_dir else RUN
        result = run_zoo(*args, cwd=isolated, env={ENV: point})
        message = " ".join(result.stderr.split())

        assert result.exit_code == 130, result.stderr
        assert "error: interrupted" not in message and "Traceback" not in message
        run_dir = isolated / message.split("Resume with: zoo run --resume ")[1].split()[0]
        newest = checkpoints.latest(run_dir)
        assert (newest.epoch if newest else 0) == saved, point
        where = f"checkpoints/epoch-{saved:04d}"
        assert describe(saved, lost, where) in message, point
        assert epochs_trained(result.stderr) == list(range(before + 1, saved + 1)), point
        record = json.loads((run_dir / "metrics.json").read_text())
        assert record["status"] == "interrupted"
        assert [row["epoch"] for row in record["history"]] == list(range(1, saved + 1))
        before = saved

    finished = run_zoo("run", "--resume", str(run_dir), "--json", cwd=isolated)

    assert finished.exit_code == 0, finished.stderr
    record = finished.json()
    assert record["status"] == "completed"
    assert epochs_trained(finished.stderr) == []  # all three were saved
    assert [row["epoch"] for row in record["history"]] == [1, 2, 3]
    assert [r["from_epoch"] for r in record["resumed"]] == [saved for _, saved, _ in CHAIN]
