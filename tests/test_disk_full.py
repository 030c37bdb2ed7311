"""A really full disk: wherever zoo writes, exit 2 with the documented message.

Each test runs the real ``zoo`` in a mount namespace of its own (``unshare --user
--map-root-user --mount``) where a folder is a tmpfs of a few KB: the kernel's own
``ENOSPC``, and libraries' own errors (HDF5, TensorFlow's file writers, zipfile), not a
simulated one (``ZOO_TEST_ENOSPC``) nor a size rlimit (that raises ``SIGXFSZ``/``EFBIG``).
The namespace, and its mounts, end with the test's shell: nothing to clean up. Growing
the tmpfs (``mount -o remount,size=...``) is the "bigger disk" a resume runs on.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import TINY_RUN, Result, mirror_plugin, write, zoo_executable

RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN]
FROZEN = [*RUN, "--set", "backbone.trainable=false", "--runtime", "tensorflow"]


@functools.cache
def refused() -> str | None:
    """Why this machine cannot mount a private tmpfs (``None`` when it can), asked once."""
    try:
        probe = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
             "mount -t tmpfs -o size=4k tmpfs /mnt"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except FileNotFoundError:
        return "unshare (util-linux) is not installed"
    if probe.returncode != 0:
        return f"the kernel refuses a tmpfs in a user namespace: {probe.stderr.strip()}"
    return None


@pytest.fixture(autouse=True)
def mountable() -> None:
    if refused():
        pytest.skip(f"needs a private tmpfs, and {refused()}")


def zoo(*args: str) -> str:
    """A ``zoo`` command line for the shell, its arguments quoted."""
    quoted = " ".join(f"'{arg}'" if "$" not in arg else f'"{arg}"' for arg in args)
    return f'"$ZOO" {quoted}'


def on_a_small_disk(
    folder: Path, size: str, *commands: str, env: dict[str, str] | None = None
) -> list[Result]:
    """Run shell ``commands`` in ``folder``, one after another, where ``$DISK``
    (``folder/disk``) is a tmpfs of ``size``; ``grow(SIZE)`` makes it bigger. Returns
    what each did."""
    disk, out = folder / "disk", folder / "out"
    disk.mkdir()
    out.mkdir()
    lines = ["set -u", f'mount -t tmpfs -o size={size} tmpfs "$DISK"']
    for n, command in enumerate(commands):
        lines.append(f'{command} >"$OUT/{n}.out" 2>"$OUT/{n}.err"; echo $? >"$OUT/{n}.rc"')
    names = {"DISK": str(disk), "OUT": str(out), "ZOO": zoo_executable(), **(env or {})}
    subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "\n".join(lines)],
        env={**os.environ, **names}, cwd=folder, check=True, timeout=600,
    )  # fmt: skip
    return [
        Result(
            int((out / f"{n}.rc").read_text()), *(read(out / f"{n}.{s}") for s in ("out", "err"))
        )
        for n in range(len(commands))
    ]


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def grow(size: str) -> str:
    return f'mount -o remount,size={size} "$DISK"'


def full(result: Result) -> str:
    """The message of a full disk, on one line (rich wraps long lines): exit 2, the
    documented message, no traceback, no signal."""
    message = " ".join(result.stderr.split())
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert "error: the disk is full: writing " in message, result.stderr
    assert " free for it; " in message
    return message


def test_a_run_stops_at_each_full_disk_with_exit_2_and_resumes_on_a_bigger_one(tmp_path: Path):
    """The disk fills at the start (config.json), then as the run writes TensorBoard's
    logs (then metrics.json cannot record it), the best epoch (HDF5), the checkpoint,
    the model (a zip); each time the disk grows a little, the run resumes and fills it
    again, until it has room and completes. A fresh run's first failure leaves no run
    to resume (it failed writing config.json)."""
    run = '"$DISK"/runs/*'
    results = on_a_small_disk(
        tmp_path,
        "4k",
        zoo(*RUN, "--output", "$DISK/first"),
        'ls -A "$DISK/first"',
        grow("12k"),
        zoo(*RUN, "--output", "$DISK/runs"),
        *(f"{grow(size)}; {zoo('run', '--resume')} {run}" for size in ("60k", "300k", "700k")),
        f"{grow('20m')}; {zoo('run', '--json', '--resume')} {run}",
    )
    start, first, _, logs, best, checkpoint, model, completed = results

    message = full(start)
    assert "writing a new run directory and its config.json to " in message
    assert "failed; nothing partial was kept" in message
    assert first.stdout == ""  # not even the run directory, with its lock file
    message = full(logs)
    assert "writing the TensorBoard logs to " in message
    run_dir = message.split("then resume the run: zoo run --resume ")[1].split()[0]
    assert f"The failure could not be recorded in {run_dir}/metrics.json" in message
    assert f"writing the best epoch's weights (epoch 1) to {run_dir}/best/" in full(best)
    assert f"writing the checkpoint of epoch 1 to {run_dir}/checkpoints/" in full(checkpoint)
    assert f"writing the model to {run_dir}/model.keras failed; nothing" in full(model)
    for result in (logs, best, checkpoint, model):
        assert f"then resume the run: zoo run --resume {run_dir}" in full(result)
    assert completed.exit_code == 0, completed.stderr
    assert json.loads(completed.stdout)["status"] == "completed"


def test_a_full_feature_cache_stops_the_run_and_it_resumes(tmp_path: Path):
    results = on_a_small_disk(
        tmp_path,
        "8k",
        zoo(*FROZEN, "--feature-cache-dir", "$DISK/cache", "--output", "runs"),
        f"{grow('20m')}; {zoo('run', '--json', '--resume')} runs/*",
    )
    features, completed = results

    message = full(features)
    assert f"writing the cached features to {tmp_path}/disk/cache/" in message
    assert "then resume the run: zoo run --resume runs/" in message
    assert completed.exit_code == 0, completed.stderr
    assert json.loads(completed.stdout)["feature_cache"]["train"]["source"] == "extracted"


def test_an_export_to_a_full_disk_is_exit_2(tmp_path: Path):
    """A run trained on a roomy disk, exported to a full one in both formats."""
    results = on_a_small_disk(
        tmp_path,
        "16k",
        zoo(*RUN, "--output", "runs"),
        f"{zoo('export', '--output', '$DISK/model.keras')} runs/*",
        f"{zoo('export', '--format', 'savedmodel', '--output', '$DISK/model')} runs/*",
        'ls -A "$DISK"',
    )
    trained, keras_file, saved_model, left = results

    assert trained.exit_code == 0, trained.stderr
    for result in (keras_file, saved_model):
        message = full(result)
        assert f"writing the exported model to {tmp_path}/disk/model" in message
        assert "fix: free space on that disk or pass another --output PATH" in message
    assert left.stdout == ""  # nothing partial


def test_ctrl_c_on_a_full_disk_says_so_and_a_full_one_at_the_figure_leaves_none(tmp_path: Path):
    """Ctrl-C once the last epoch is saved, when the disk has just filled up: the run ends
    interrupted, and says that metrics.json could not record it. Then a resume finds
    room for its lock and TensorBoard's files but not for the confusion matrix: it
    stops there, and no part of the figure is left."""
    # A shell starts a command in the background with SIGINT ignored: env restores it.
    paused = f"ZOO_TEST_PAUSE=test@1 env --default-signal=INT {zoo(*RUN, '--output', '$DISK/runs')}"
    interrupted = f"""({paused} & pid=$!
        for _ in $(seq 1200); do
            [ -e "$DISK"/runs/*/metrics.json ] && break; kill -0 $pid || break; sleep 0.1
        done
        head -c 20M /dev/zero >"$DISK/filler" 2>/dev/null; kill -INT $pid
        for _ in $(seq 600); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
        kill -KILL $pid 2>/dev/null; wait $pid)"""
    room = '$(( $(stat -f -c "%a * %S" "$DISK") - 20480 ))'  # 5 pages: 1 lock, 2 logs
    resume = zoo("run", "--resume")
    results = on_a_small_disk(
        tmp_path,
        "2m",
        interrupted,
        f'(rm "$DISK/filler"; head -c {room} /dev/zero >"$DISK/filler"; {resume} "$DISK"/runs/*)',
        'ls -A "$DISK"/runs/*',
    )
    stopped, resumed, left = results

    message = " ".join(stopped.stderr.split())
    assert stopped.exit_code == 130, stopped.stderr
    assert "Traceback" not in message and "interrupted after epoch 1; epoch 1 is saved" in message
    run_dir = message.split("Resume with: zoo run --resume ")[1].split()[0]
    unrecorded = f"could not be recorded in {run_dir}/metrics.json (the disk is full)"
    assert f"warning: the interruption {unrecorded}" in message
    message = full(resumed)
    figure = f"writing the confusion matrix to {run_dir}/confusion_matrix.png failed"
    assert f"{figure}; nothing partial was kept." in message
    assert f"then resume the run: zoo run --resume {run_dir}" in message
    assert "confusion_matrix" not in left.stdout, left.stdout


REDRAWN = """
import sys
from pathlib import Path

import numpy as np

from zoo.model import scoring

path = Path(sys.argv[1]) / "confusion_matrix.png"
two = scoring.evaluate("test", [(np.array([[0.2], [0.9]]), np.array([0, 1]))], ["a", "b"])
three = scoring.evaluate("test", [(np.eye(3), np.arange(3))], ["a", "b", "c"])
scoring.draw(two, path)
whole = path.read_bytes()
try:
    with open(path.with_name("filler"), "wb") as filler:
        filler.write(bytes(1 << 24))
except OSError:
    pass  # the disk is full
try:
    scoring.draw(three, path)  # a bigger figure
except Exception as exc:
    print(str(exc).splitlines()[0])
print(path.read_bytes() == whole, sorted(p.name for p in path.parent.iterdir()))
"""


def test_a_figure_replaced_on_a_full_disk_stays_whole(tmp_path: Path):
    """Drawing a confusion matrix over an earlier one when the disk is full: the earlier
    one stays as it was, not the start of the new one (a resume redoes the test)."""
    write(tmp_path / "redrawn.py", REDRAWN)
    [redrawn] = on_a_small_disk(tmp_path, "200k", f'"{sys.executable}" redrawn.py "$DISK"')

    assert redrawn.exit_code == 0, redrawn.stderr
    failed, left = redrawn.stdout.splitlines()
    assert failed.startswith("cannot write the figure ") and "No space left" in failed
    assert left == "True ['confusion_matrix.png', 'filler']"


FILLING_NAN = """
import glob
import os

import zoo


def fill_then_nan(x):
    if glob.glob(os.environ["STARTED"]):  # traced for training, once the run has begun
        try:
            with open(os.environ["FILLER"], "wb") as f:
                f.write(bytes(1 << 24))
        except OSError:
            pass  # the disk is full
    return x * float("nan")


def build(image_shape, params):
    import keras
    nan = keras.layers.Lambda(fill_then_nan)
    model = keras.Sequential([keras.Input(image_shape), keras.layers.Conv2D(2, 3), nan])
    return zoo.BuiltBackbone(model=model, preprocessing="unit")


@zoo.hookimpl
def register_backbones(register):
    register(zoo.Backbone(name="filling_nan", description="Fills the disk, gives NaN", build=build))
"""


def test_a_nan_stop_on_a_full_disk_says_that_it_could_not_be_recorded(tmp_path: Path):
    """A run that fails for another reason than the disk (a NaN loss, exit 1) when the disk
    is full: the console says that metrics.json could not record the failure."""
    write(tmp_path / "filling_nan.py", FILLING_NAN)
    write(tmp_path / "registry.toml", '[plugins]\nload = ["filling_nan.py"]\n')
    disk = tmp_path / "disk"
    [failed] = on_a_small_disk(
        tmp_path,
        "2m",
        zoo("run", "shapes", "filling_nan", "gap_sigmoid", *TINY_RUN, "--output", "$DISK/runs"),
        env={"STARTED": f"{disk}/runs/*/config.json", "FILLER": f"{disk}/filler"},
    )

    message = " ".join(failed.stderr.split())
    assert failed.exit_code == 1, failed.stderr
    assert "Traceback" not in message
    assert "error: the training loss became NaN or infinite in epoch 1" in message
    note = f"note: the failure could not be recorded in {disk}/runs/"
    assert note in message and "/metrics.json (the disk is full)" in message.split(note)[1]


@contextmanager
def streaming(body: bytes) -> Iterator[str]:
    """Serve ``body`` at every path, without a Content-Length (its size unknown until
    the end, as a streamed download); yield the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_download_into_a_full_disk_is_exit_2_and_leaves_nothing(tmp_path: Path):
    """A file of unknown size fills the disk as it is written; one of known size is
    refused before writing. Either way, nothing is left in the cache."""
    body = bytes(range(256)) * 256  # 64 KB
    with streaming(body) as base:
        published = {"streamed.bin": (None, None), "sized.bin": (len(body), None)}
        write(tmp_path / "mirror.py", mirror_plugin(base, published))
        write(tmp_path / "registry.toml", '[plugins]\nload = ["mirror.py"]\n')
        results = on_a_small_disk(
            tmp_path,
            "16k",
            zoo("fetch", "mirrored", "--set", "backbone.file=streamed.bin"),
            zoo("fetch", "mirrored", "--set", "backbone.file=sized.bin"),
            'find "$DISK/cache" -type f',
            env={"MIRROR_CACHE": str(tmp_path / "disk" / "cache")},
        )
    streamed, sized, left = results

    assert f"writing streamed.bin to {tmp_path}/disk/cache/streamed.bin failed" in full(streamed)
    message = full(sized)
    assert f"writing sized.bin to {tmp_path}/disk/cache/sized.bin failed" in message
    assert "expected: about 64.0 KB free for it" in message
    assert left.stdout == ""


def test_no_room_for_the_completion_marker_is_exit_2_and_the_next_fetch_finishes(
    tmp_path: Path,
):
    """The download takes the disk's last free inode: zoo's record of the file goes
    unwritten (it only spares a hash), its completion marker cannot be written: exit 2.
    On a disk with room, the same command finishes the file."""
    body = bytes(range(256)) * 8
    with streaming(body) as base:
        write(tmp_path / "mirror.py", mirror_plugin(base, {"marked.bin": (len(body), None)}))
        write(tmp_path / "registry.toml", '[plugins]\nload = ["mirror.py"]\n')
        fetch = zoo("fetch", "mirrored", "--set", "backbone.file=marked.bin")
        results = on_a_small_disk(
            tmp_path,
            "64k,nr_inodes=3",  # the disk's root, the cache folder and the file
            fetch,
            'ls -A "$DISK/cache"',
            f'mount -o remount,nr_inodes=100 "$DISK"; {fetch}',
            'ls -A "$DISK/cache" "$DISK/cache/.done"',
            env={"MIRROR_CACHE": str(tmp_path / "disk" / "cache")},
        )
    marker, left, again, done = results

    message = full(marker)
    cache = tmp_path / "disk" / "cache"
    assert f"writing the completion marker of marked.bin to {cache}/.done/marked.bin" in message
    assert "room for no more files (no free inodes)" in message
    assert left.stdout.split() == ["marked.bin"]  # whole; no record, no part of one
    assert again.exit_code == 0, again.stderr
    assert "marked.bin" in done.stdout.split(f"{cache}/.done:")[1]


IS_FULL = """
import errno, json, sys, zipfile
from pathlib import Path
from zoo.storage.disk_full import is_full

TF = "tensorflow.python.framework.errors_impl"
ResourceExhausted = type("ResourceExhaustedError", (Exception,), {"__module__": TF})
errors = {
    "h5py RuntimeError": RuntimeError("Can't decrement id ref count"),
    "h5py OSError without errno": OSError("Unable to synchronously write data"),
    "TensorFlow ResourceExhaustedError": ResourceExhausted("Failed to flush 1 events"),
    "zipfile BadZipFile": zipfile.BadZipFile("Bad CRC-32"),
    "ValueError": ValueError("a bug"),
    "OSError EACCES": OSError(errno.EACCES, "Permission denied"),
    "OSError ENOSPC": OSError(errno.ENOSPC, "No space left on device"),
    "OSError EDQUOT": OSError(errno.EDQUOT, "Disk quota exceeded"),
}
print(json.dumps({
    where: {name: is_full(error, Path(folder) / "file") for name, error in errors.items()}
    for where, folder in (("full", sys.argv[1]), ("roomy", sys.argv[2]))
}))
"""


def test_a_library_error_is_a_full_disk_only_where_the_disk_is_in_fact_full(tmp_path: Path):
    """ENOSPC and EDQUOT are a full disk anywhere; a library's error without an errno only
    where the filesystem is full, so that a bug elsewhere keeps its traceback."""
    write(tmp_path / "is_full.py", IS_FULL)
    _, check = on_a_small_disk(
        tmp_path,
        "16k",
        'head -c 1M /dev/zero >"$DISK/filler"',  # fails once the disk is full
        f'"{sys.executable}" is_full.py "$DISK" "{tmp_path}"',
    )

    assert check.exit_code == 0, check.stderr
    libraries = ["h5py RuntimeError", "h5py OSError without errno"]
    libraries += ["TensorFlow ResourceExhaustedError", "zipfile BadZipFile"]
    errnos, others = ["OSError ENOSPC", "OSError EDQUOT"], ["ValueError", "OSError EACCES"]
    found = json.loads(check.stdout)
    assert found["full"] == {name: name not in others for name in libraries + errnos + others}
    assert found["roomy"] == {name: name in errnos for name in libraries + errnos + others}
