"""The ``zoo`` command tunes Python's garbage collector in its own process, and only there."""

from __future__ import annotations

import json
import subprocess
import sys

#: Loads TensorFlow as a command would, then says how many objects the collector skips.
FROZEN_AFTER_LOADING = """
import gc, json, sys
from zoo import _process, _tf
if sys.argv[1] == "zoo":
    _process.own()
before = gc.get_freeze_count()
_tf.load()
after = gc.get_freeze_count()
_process.freeze()
print(json.dumps([before, after, gc.get_freeze_count()]))
"""


def frozen_counts(process: str) -> list[int]:
    proc = subprocess.run(
        [sys.executable, "-c", FROZEN_AFTER_LOADING, process],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_the_zoo_command_freezes_tensorflows_objects_out_of_garbage_collection():
    before, after, at_exit = frozen_counts("zoo")

    assert before == 0
    assert after > 100_000  # TensorFlow's and Keras's objects, walked by no collection now
    assert at_exit >= after


def test_a_program_using_zoos_api_keeps_its_garbage_collector_as_it_was():
    assert frozen_counts("library") == [0, 0, 0]


def test_the_installed_zoo_command_runs_in_a_process_of_its_own():
    from importlib.metadata import entry_points

    (command,) = entry_points(group="console_scripts", name="zoo")

    assert command.value == "zoo.cli:script"  # not zoo.cli:main, which tunes nothing
