"""Training on several devices and several workers gives what one device gives."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_RUN, TWO_DEVICES, history_numbers, run_zoo, zoo_executable

RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--epochs", "2", "--json"]


def weights(run_dir: str) -> list[np.ndarray]:
    import keras

    import zoo.model.layers  # noqa: F401  (registers the Preprocess layer for loading)

    model = keras.models.load_model(Path(run_dir) / "model.keras", compile=False)
    return [np.asarray(w) for w in model.get_weights()]


def test_mirrored_on_two_devices_trains_the_same_weights_as_one_device(isolated: Path):
    script = isolated / "two_devices.py"
    script.write_text(TWO_DEVICES)
    proc = subprocess.run(
        [sys.executable, str(script), *RUN, "--strategy", "mirrored", "--output", "mirrored"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    mirrored = json.loads(proc.stdout)
    single = run_zoo(*RUN, "--strategy", "default", "--output", "single").json()

    assert "MirroredStrategy on /device:CPU:0, /device:CPU:1 (2 replicas in sync)" in proc.stderr
    assert history_numbers(mirrored) == pytest.approx(history_numbers(single), abs=1e-5)
    for a, b in zip(weights(mirrored["run_dir"]), weights(single["run_dir"]), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_together_and_end_with_identical_weights(isolated: Path):
    hosts = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = []
    for index in range(2):
        cwd = isolated / f"worker{index}"
        cwd.mkdir()
        config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        workers.append(
            subprocess.Popen(
                [zoo_executable(), *RUN],
                cwd=cwd,
                env={**os.environ, "TF_CONFIG": json.dumps(config)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [proc.communicate(timeout=600) for proc in workers]
    for proc, (_, stderr) in zip(workers, outputs, strict=True):
        assert proc.returncode == 0, stderr
    chief, other = (json.loads(stdout) for stdout, _ in outputs)
    single = run_zoo(*RUN, "--output", "single", cwd=isolated).json()

    assert "MultiWorkerMirroredStrategy" in outputs[0][1] and "x 2 workers" in outputs[0][1]
    assert chief["weights_sha256"] == other["weights_sha256"]
    assert history_numbers(chief) == history_numbers(other)
    # Only the chief writes a run directory.
    assert (isolated / "worker0" / chief["run_dir"]).is_dir()
    assert other["run_dir"] is None
    assert not (isolated / "worker1" / "runs").exists()
    # Two workers with half the batch each train as one worker with the whole batch.
    assert history_numbers(chief) == pytest.approx(history_numbers(single), abs=1e-4)
