"""Ctrl-C and SIGKILL during training, then ``zoo run --resume``."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import (
    TINY_RUN,
    colour_folder,
    history_numbers,
    interrupt_after_epoch,
    run_zoo,
    zoo_executable,
)

#: Long enough to be stopped part-way: 20 epochs of 40 small steps.
SLOW_RUN = [
    "run", "shapes", "small_cnn", "gap_sigmoid",
    "--epochs", "20", "--image-size", "32", "--batch-size", "8",
    "--set", "dataset.num_images=400",
    "--set", "dataset.min_size=24",
    "--set", "dataset.max_size=40",
]  # fmt: skip


#: Three quick epochs.
TINY_RUN_3_EPOCHS = [*TINY_RUN, "--epochs", "3"]


def start(cwd: Path) -> subprocess.Popen[str]:
    """``zoo run`` in a subprocess that reacts to SIGINT as a terminal's Ctrl-C."""
    return subprocess.Popen(
        [zoo_executable(), *SLOW_RUN],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell may start background jobs with SIGINT ignored; a terminal would not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_checkpoint(cwd: Path, proc: subprocess.Popen[str], epoch: int) -> Path:
    """The run directory, once its checkpoint of ``epoch`` (or later) is written."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for pointer in cwd.glob("runs/*/checkpoints/latest.json"):
            if json.loads(pointer.read_text())["epoch"] >= epoch:
                return pointer.parent.parent
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("no checkpoint appeared")


def epochs(metrics: dict) -> list[int]:
    return [row["epoch"] for row in metrics["history"]]


def test_ctrl_c_saves_finished_epochs_and_resume_finishes_the_run(zoo_cli, isolated: Path):
    proc = start(isolated)
    run_dir = wait_for_checkpoint(isolated, proc, epoch=2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 130
    relative = run_dir.relative_to(isolated)
    assert f"Resume with: zoo run --resume {relative}" in stderr
    interrupted = json.loads((run_dir / "metrics.json").read_text())
    assert interrupted["status"] == "interrupted"
    done = len(interrupted["history"])
    assert 2 <= done < 20

    resumed = zoo_cli("run", "--resume", str(relative), "--json")

    assert resumed.exit_code == 0, resumed.stderr
    metrics = resumed.json()
    assert metrics["status"] == "completed"
    assert epochs(metrics) == list(range(1, 21))
    assert [event["from_epoch"] for event in metrics["resumed"]] == [done]
    assert (run_dir / "model.keras").is_file()


def test_after_sigkill_even_mid_write_the_run_resumes_as_if_never_stopped(zoo_cli, isolated: Path):
    proc = start(isolated)
    run_dir = wait_for_checkpoint(isolated, proc, epoch=3)
    proc.kill()
    proc.communicate(timeout=60)
    folder = run_dir / "checkpoints"
    # What a kill in the middle of writing the next checkpoint leaves behind.
    torn = folder / ".epoch-0019.x1y2z3"
    torn.mkdir()
    (torn / "model.weights.h5").write_bytes(b"\x89HDF\r\n half a file")
    (folder / "latest.json").write_text('{"epoch": 19, "path": "epoch-0019"}')

    resumed = zoo_cli("run", "--resume", str(run_dir), "--json").json()
    unbroken = zoo_cli(*SLOW_RUN, "--output", "unbroken", "--json").json()

    assert resumed["status"] == "completed"
    assert epochs(resumed) == list(range(1, 21))
    assert [row["stage"] for row in resumed["history"]] == ["head"] * 20
    assert history_numbers(resumed) == pytest.approx(history_numbers(unbroken))
    assert resumed["test"] == unbroken["test"]
    assert resumed["kept"] == unbroken["kept"]  # the best epoch survived the kill
    assert resumed["weights_sha256"] == unbroken["weights_sha256"]
    assert not list(folder.glob(".epoch-*"))


def test_resume_takes_no_new_settings(zoo_cli):
    result = zoo_cli("run", "--resume", "runs/x", "--epochs", "3")

    assert result.exit_code == 2
    assert "takes no --epochs" in result.stderr


def test_a_completed_run_cannot_be_resumed(zoo_cli):
    finished = zoo_cli("run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--json").json()

    result = zoo_cli("run", "--resume", finished["run_dir"])

    assert result.exit_code == 2
    assert "already completed" in result.stderr


FROZEN_RUN = [
    "run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN_3_EPOCHS,
    "--set", "backbone.trainable=false", "--json",
]  # fmt: skip


def test_a_frozen_backbone_checkpoints_only_its_head_and_resumes_exactly(
    zoo_cli, monkeypatch: pytest.MonkeyPatch
):
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, 2)
        stopped = zoo_cli(*FROZEN_RUN)
    assert stopped.exit_code == 130
    run_dir = Path(stopped.stderr.split("Resume with: zoo run --resume ")[1].split()[0])
    state = json.loads((run_dir / "checkpoints" / "epoch-0002" / "state.json").read_text())
    assert state["weights"] == "head"

    resumed = zoo_cli("run", "--resume", str(run_dir), "--json").json()
    unbroken = zoo_cli(*FROZEN_RUN, "--output", "unbroken").json()

    assert epochs(resumed) == [1, 2, 3]
    assert history_numbers(resumed) == pytest.approx(history_numbers(unbroken))
    assert resumed["test"] == pytest.approx(unbroken["test"])
    assert resumed["weights_sha256"] == unbroken["weights_sha256"]


def test_a_head_checkpoint_refuses_a_different_backbone(zoo_cli, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, 1)
        stopped = zoo_cli(*FROZEN_RUN)
    run_dir = Path(stopped.stderr.split("Resume with: zoo run --resume ")[1].split()[0])
    state_file = run_dir / "checkpoints" / "epoch-0001" / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "backbone_sha256": "0" * 64}))

    result = zoo_cli("run", "--resume", str(run_dir))

    assert result.exit_code == 2
    assert "the frozen backbone built now differs" in result.stderr


# --- A dataset whose training split shuffles its own file names (image_folder) -------


def photo_run(photos: Path, *more: str) -> list[str]:
    return [
        "run", "image_folder", "small_cnn", "gap_sigmoid",
        "--epochs", "3", "--image-size", "24", "--batch-size", "8",
        "--set", f"dataset.path={photos}", "--json", *more,
    ]  # fmt: skip


def test_an_image_folder_run_resumes_exactly_as_an_unbroken_one(zoo_cli, isolated: Path):
    from zoo.train.durability.interrupts import ENV

    photos = colour_folder(isolated / "photos", {"red": 30, "blue": 30})
    unbroken = zoo_cli(*photo_run(photos, "--output", "unbroken")).json()
    # Ctrl-C as epoch 2 begins, then the resume, each a new process.
    stopped = run_zoo(*photo_run(photos), cwd=isolated, env={ENV: "epoch.begin@2"})
    run_dir = stopped.stderr.split("Resume with: zoo run --resume ")[1].split()[0]

    resumed = run_zoo("run", "--resume", run_dir, "--json", cwd=isolated)

    assert stopped.exit_code == 130, stopped.stderr
    assert resumed.exit_code == 0, resumed.stderr
    assert history_numbers(resumed.json()) == pytest.approx(history_numbers(unbroken))
    assert resumed.json()["weights_sha256"] == unbroken["weights_sha256"]


def test_fine_tuning_sees_the_same_images_whether_the_features_were_cached_or_not(
    zoo_cli, isolated: Path
):
    photos = colour_folder(isolated / "photos", {"red": 30, "blue": 30})
    tuned = ["--set", "backbone.trainable=false", "--fine-tune-epochs", "2"]
    tuned += ["--fine-tune-layers", "2"]

    extracted = zoo_cli(*photo_run(photos, *tuned)).json()
    cached = zoo_cli(*photo_run(photos, *tuned)).json()

    assert {s["source"] for s in extracted["feature_cache"].values()} == {"extracted"}
    assert {s["source"] for s in cached["feature_cache"].values()} == {"cache"}
    assert history_numbers(cached) == pytest.approx(history_numbers(extracted))
    assert cached["weights_sha256"] == extracted["weights_sha256"]


def test_a_run_that_cannot_resume_says_so_before_tensorflow_loads(isolated: Path):
    """``zoo run --resume`` checks the run directory first: here TensorFlow cannot load."""
    done = run_zoo("run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--json")
    run_dir = json.loads(done.stdout)["run_dir"]
    site = isolated / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        'import sys\n\nsys.modules["tensorflow"] = sys.modules["keras"] = None\n'
    )

    again = run_zoo("run", "--resume", run_dir, env={"PYTHONPATH": str(site)})

    assert again.exit_code == 2, again.stderr
    assert "is already completed; there is nothing to resume" in again.stderr
