"""The ``zoo`` command tunes Python's garbage collector in its own process, and only there."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

#: Loads TensorFlow as a command would, then says how many objects the collector skips.
FROZEN_AFTER_LOADING = """
import contextlib, gc, json, sys
from zoo.runtime import loader, patches
own = patches.command_process() if sys.argv[1] == "zoo" else contextlib.nullcontext()
with own:
    before = gc.get_freeze_count()
    loader.load()
    after = gc.get_freeze_count()
print(json.dumps([before, after, gc.get_freeze_count()]))
"""


def answer(program: str, argument: str) -> Any:
    """What ``program`` prints last, as JSON, run in a new process with ``argument``."""
    proc = subprocess.run(
        [sys.executable, "-c", program, argument], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def frozen_counts(process: str) -> list[int]:
    return answer(FROZEN_AFTER_LOADING, process)


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


#: Loads TensorFlow in a program of its own; says which collections ran meanwhile.
COLLECTIONS_WHILE_LOADING = """
import contextlib, gc, json, sys
from zoo.runtime import loader, patches
if sys.argv[1] == "disabled":
    gc.disable()
own = patches.command_process() if sys.argv[1] == "zoo" else contextlib.nullcontext()
ran = []
gc.callbacks.append(lambda phase, info: phase == "start" and ran.append(info["generation"]))
with own:
    loader.load()
    print(json.dumps({"during": ran, "enabled": gc.isenabled()}))
"""


def collections_while_loading(collector: str) -> dict:
    return answer(COLLECTIONS_WHILE_LOADING, collector)


def test_tensorflow_loads_with_no_garbage_collection_and_the_collector_resumes_after():
    found = collections_while_loading("enabled")

    # The one young-generation pass as the collector resumes, over the import's objects
    # (a program using zoo's API keeps them collectable); with the collector on
    # throughout, the import ran about a thousand passes, seven of them full.
    assert found["during"] in ([], [0])
    assert found["enabled"]


def test_the_zoo_command_freezes_tensorflow_before_the_collector_resumes():
    found = collections_while_loading("zoo")

    assert found == {"during": [], "enabled": True}  # not even the pass that resuming starts


def test_a_collector_the_program_disabled_stays_disabled_after_loading():
    found = collections_while_loading("disabled")

    assert found == {"during": [], "enabled": False}
