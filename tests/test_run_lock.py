"""One process at a time trains a run directory (``zoo/train/durability/lock.py``): a resume of a
run still training is refused naming the process; a killed process's lock is taken over."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import TINY_RUN, run_zoo, zoo_executable

from zoo.errors import ZooError
from zoo.train.durability import lock
from zoo.train.durability.interrupts import ENV, PAUSE

RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--epochs", "2"]


def one_line(text: str) -> str:
    return " ".join(text.split())


def start_paused(cwd: Path, point: str) -> subprocess.Popen[bytes]:
    """``zoo run`` in a subprocess that stops at ``point`` and sleeps there."""
    log = (cwd / "first.log").open("wb")
    return subprocess.Popen(
        [zoo_executable(), *RUN],
        cwd=cwd,
        env={**os.environ, PAUSE: point},
        stdout=log,
        stderr=log,
    )


def wait_for_checkpoint(cwd: Path, proc: subprocess.Popen[bytes], epoch: int) -> Path:
    """The run directory, once the checkpoint of ``epoch`` is written."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for pointer in cwd.glob("runs/*/checkpoints/latest.json"):
            if json.loads(pointer.read_text())["epoch"] >= epoch:
                return pointer.parent.parent
        assert proc.poll() is None, (cwd / "first.log").read_text()
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no checkpoint appeared")


def test_a_run_in_training_is_not_resumed_and_a_killed_ones_lock_is_taken_over(isolated: Path):
    first = start_paused(isolated, "epoch.begin@2")
    try:
        run_dir = wait_for_checkpoint(isolated, first, epoch=1)

        refused = run_zoo("run", "--resume", str(run_dir), cwd=isolated)
        compared = run_zoo("compare", str(run_dir), "--json", cwd=isolated)
    finally:
        first.kill()
        first.wait(timeout=60)

    message = one_line(refused.stderr)
    assert refused.exit_code == 2, refused.stderr
    assert f"is being trained by process {first.pid} on this machine, since" in message
    assert f"kill -INT {first.pid}" in message and "Traceback" not in message
    # A reader takes no lock, and the lock file is no damage to it.
    assert compared.exit_code == 0, compared.stderr
    assert "damaged" not in compared.stderr

    resumed = run_zoo("run", "--resume", str(run_dir), "--json", cwd=isolated)

    assert resumed.exit_code == 0, resumed.stderr
    record = resumed.json()
    assert record["status"] == "completed"
    assert [row["epoch"] for row in record["history"]] == [1, 2]
    [taken] = [w for w in record["warnings"] if w["code"] == lock.STALE]
    assert f"process {first.pid} on this machine" in taken["message"]
    assert f"process {first.pid}" in one_line(resumed.stderr)
    assert "damaged" not in resumed.stderr
    # A clean end releases the lock: nobody is named, nothing is refused for it.
    assert (run_dir / lock.FILE).read_text() == ""
    again = run_zoo("run", "--resume", str(run_dir), cwd=isolated)
    assert again.exit_code == 2
    assert "already completed" in one_line(again.stderr)


def interrupted_run(cwd: Path) -> Path:
    """A run stopped by Ctrl-C before its first epoch ended: resumable."""
    result = run_zoo(*RUN, "--epochs", "1", cwd=cwd, env={ENV: "epoch.begin@1"})
    assert result.exit_code == 130, result.stderr
    [run_dir] = (cwd / "runs").iterdir()
    return run_dir


def test_a_lock_file_that_links_elsewhere_is_refused_and_left_alone(isolated: Path):
    run_dir = interrupted_run(isolated)
    assert (run_dir / lock.FILE).read_text() == ""  # Ctrl-C released it
    victim = isolated / "victim.txt"
    victim.write_text("keep me\n")
    (run_dir / lock.FILE).unlink()
    (run_dir / lock.FILE).symlink_to(victim)

    result = run_zoo("run", "--resume", str(run_dir), cwd=isolated)

    assert result.exit_code == 2, result.stderr
    assert f"{lock.FILE} is a symbolic link" in one_line(result.stderr)
    assert victim.read_text() == "keep me\n"
    assert not (run_dir / "checkpoints").exists()


# --- The lock in this process --------------------------------------------------------


def test_a_lock_is_released_emptied_and_taken_again(tmp_path: Path):
    assert lock.hold(tmp_path) is None
    assert json.loads((tmp_path / lock.FILE).read_text())["pid"] == os.getpid()
    lock.release(tmp_path)

    assert (tmp_path / lock.FILE).read_text() == ""
    assert lock.hold(tmp_path) is None  # free and empty: nobody to take over
    lock.release()


def test_a_lock_file_naming_a_process_whose_lock_is_free_was_left_by_a_killed_one(
    tmp_path: Path,
):
    left = {"pid": 99999999, "host": "elsewhere\x1b]0;title\x07", "since": "yesterday"}
    (tmp_path / lock.FILE).write_text(json.dumps(left))

    stale = lock.hold(tmp_path)
    lock.release()

    assert stale == lock.Holder(99999999, "elsewhere]0;title", "yesterday")


@pytest.mark.parametrize("content", ["", "not json", '{"pid": "1"}', "x" * 100_000])
def test_a_lock_file_that_names_nobody_is_taken_without_a_word(tmp_path: Path, content: str):
    (tmp_path / lock.FILE).write_text(content)

    assert lock.hold(tmp_path) is None
    lock.release()


HOLD = """
import sys, time
from pathlib import Path
from zoo.errors import ZooError
from zoo.train.durability import lock

lock.hold(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(600)
"""


def test_another_process_holding_the_lock_is_named_until_it_is_killed(tmp_path: Path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(ZooError, match=f"being trained by process {holder.pid} on this"):
            lock.hold(tmp_path)
    finally:
        holder.kill()
        holder.wait(timeout=60)

    stale = lock.hold(tmp_path)
    lock.release()

    assert stale is not None and stale.pid == holder.pid


FULL_DISK = """
import sys
from pathlib import Path

run = Path(sys.argv[1]) / "run"
run.mkdir()
try:
    with open(run.parent / "filler", "wb") as f:
        while True:
            f.write(bytes(1024))
            f.flush()
except OSError:
    pass
from zoo.train.durability import lock

print(lock.hold(run), repr((run / lock.FILE).read_text()))
lock.release()
"""


def test_on_a_full_disk_the_lock_holds_though_its_file_names_nobody(tmp_path: Path):
    if not shutil.which("unshare"):
        pytest.skip("needs unshare to mount a small filesystem of its own")
    mount = tmp_path / "small"
    mount.mkdir()
    script = f'mount -t tmpfs -o size=8k tmpfs "$1" && exec "{sys.executable}" -c "$2" "$1"'
    unshare = ["unshare", "--user", "--map-root-user", "--mount"]
    proc = subprocess.run(
        [*unshare, "sh", "-c", script, "sh", str(mount), FULL_DISK],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0 and "mount" in proc.stderr:
        pytest.skip(f"the kernel refuses a private mount here: {proc.stderr.strip()}")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "None ''\n"


def test_no_room_for_the_lock_file_is_left_to_the_full_disk_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def full(*args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "open", full)

    with pytest.raises(OSError) as raised:
        lock.hold(tmp_path)

    assert raised.value.errno == errno.ENOSPC and not isinstance(raised.value, ZooError)


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.ENOSYS])
def test_a_file_system_without_locks_trains_unlocked_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
):
    """NFS without lockd, Lustre without -o flock: a warning, not a failed run."""

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(lock.fcntl, "flock", no_locks)

    with pytest.warns(UserWarning, match="has no file locks"):
        assert lock.hold(tmp_path) is None

    assert tmp_path.resolve() not in lock._held


def test_a_failure_before_the_run_begins_releases_the_lock(tmp_path: Path):
    """Ctrl-C while TensorFlow loads, after --resume took the lock: the file is emptied,
    so the next resume does not take this process for a killed one."""
    with pytest.raises(KeyboardInterrupt), lock.released_on_error():
        lock.hold(tmp_path)
        raise KeyboardInterrupt

    assert (tmp_path / lock.FILE).read_bytes() == b""
    assert lock.hold(tmp_path) is None  # free and empty: nobody to take over
    lock.release()
