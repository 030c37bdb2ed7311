"""zoo's process-wide patches (zoo/runtime/patches.py): applied by default, and none of them
with ZOO_NO_PATCHES=1, under which a run works all the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TINY_RUN, zoo_executable

from zoo import console
from zoo.runtime import patches

#: The installed ``zoo`` script, run as a user runs it; as the process exits, what the
#: patches left: frozen objects, Keras's matplotlib, TensorFlow's per-device builder.
PATCHED_AT_EXIT = """
import atexit, gc, json, runpy, sys

def report():
    from tensorflow.python.data.ops import multi_device_iterator_ops as devices
    gallery = sys.modules.get("keras.src.visualization.plot_image_gallery")
    found = {
        "frozen": gc.get_freeze_count(),
        "keras_pyplot": type(getattr(gallery, "plt", None)).__name__,
        "pyplot_imported": "matplotlib.pyplot" in sys.modules,
        "device_datasets_wrapped": hasattr(devices._create_device_dataset, "__wrapped__"),
    }
    with open(report_path, "w") as f:
        json.dump(found, f)

report_path, script = sys.argv[1:3]
atexit.register(report)
sys.argv = ["zoo", *sys.argv[3:]]
runpy.run_path(script, run_name="__main__")
"""


def run_and_report(tmp_path: Path, switch: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``zoo run`` of a tiny model with ``ZOO_NO_PATCHES=switch``, and what the patches
    left in its process."""
    report = tmp_path / "patched.json"
    args = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--json"]
    proc = subprocess.run(
        [sys.executable, "-c", PATCHED_AT_EXIT, str(report), zoo_executable(), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, patches.ENV: switch},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(report.read_text())


@pytest.mark.parametrize("switch", ["", "1"])
def test_a_run_works_with_the_patches_on_and_with_them_all_off(switch: str, tmp_path: Path):
    proc, left = run_and_report(tmp_path, switch)

    assert json.loads(proc.stdout)["status"] == "completed"
    if switch:  # off: the libraries as they come
        assert left == {
            "frozen": 0,  # the collector walks everything, as in any process
            "keras_pyplot": "module",  # Keras imported the real pyplot as it loaded
            "pyplot_imported": True,
            "device_datasets_wrapped": False,  # TensorFlow's own builder
        }
    else:
        assert left["frozen"] > 100_000  # TensorFlow's objects, out of the collector's walks
        assert left["keras_pyplot"] == "Deferred"  # a stand-in, never used
        assert not left["pyplot_imported"]
        assert left["device_datasets_wrapped"]


#: Loads TensorFlow as a command does; says which collections ran meanwhile.
COLLECTIONS_WHILE_LOADING = """
import gc, json
from zoo.runtime import loader
ran = []
gc.callbacks.append(lambda phase, info: phase == "start" and ran.append(info["generation"]))
loader.load()
print(json.dumps(ran))
"""


def test_with_the_patches_off_the_collector_runs_while_tensorflow_loads():
    proc = subprocess.run(
        [sys.executable, "-c", COLLECTIONS_WHILE_LOADING],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, patches.ENV: "1"},
    )

    assert proc.returncode == 0, proc.stderr[-2000:]
    ran = json.loads(proc.stdout.splitlines()[-1])
    assert 2 in ran  # full collections, which the paused collector never starts


@pytest.mark.parametrize(
    ("value", "enabled"), [(None, True), ("", True), ("0", True), ("1", False), ("yes", False)]
)
def test_the_switch_is_any_value_but_empty_or_zero(
    value: str | None, enabled: bool, monkeypatch: pytest.MonkeyPatch
):
    if value is None:
        monkeypatch.delenv(patches.ENV, raising=False)
    else:
        monkeypatch.setenv(patches.ENV, value)

    assert patches.enabled() is enabled


def test_tables_go_to_stderr_only_within_the_block():
    with console.tables_on_stderr(True):
        assert console.out is console.err
        with console.tables_on_stderr(False):  # an inner block keeps where tables go
            assert console.out is console.err
    assert console.out is not console.err


def test_zoo_doctor_says_when_the_patches_are_off(zoo_cli, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(patches.ENV, "1")

    result = zoo_cli("doctor", "--json")

    found = [f for f in result.json()["findings"] if f["topic"] == "patches"]
    assert [f["level"] for f in found] == ["info"]
    assert patches.ENV in found[0]["text"]
