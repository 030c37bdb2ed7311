"""Every process-wide patch zoo makes, in one place, and the one switch that turns them off.

A patch here changes how Python or a library behaves beyond zoo's own code, to save time
or to keep clear of a library's bug. Each is a function below whose first line says
what it does and why, applied from one call site:

==============================  ==========================================================
patch                           applied by
==============================  ==========================================================
:func:`matplotlib_deferred`     :func:`loading_tensorflow` (``zoo.runtime.loader.load``)
:func:`collection_paused`       :func:`loading_tensorflow`
:func:`freeze`                  :func:`loading_tensorflow`, and :func:`command_process`
                                (``zoo.cli.script``) as the command ends
:func:`untuned_device_datasets` ``zoo.train.loop.distribute``, once per process
:func:`openvino_indexed`        ``zoo.runtime.conversion.convert``, while OpenVINO converts
==============================  ==========================================================

``ZOO_NO_PATCHES=1`` (any value but empty or ``0``) applies none of them: zoo then runs
on Python and the libraries as they come, slower to start and to convert, and open to
the stalls the patches avoid. Set it to rule the patches out when something misbehaves
(a new TensorFlow or OpenVINO whose internals moved). :func:`enabled` is where it is read.

Kept with the switch set: OpenVINO loads with its usage telemetry kept from loading
(``zoo.runtime.conversion.openvino``), a promise rather than a speed-up: zoo reports
nothing about its users' runs. Not patches: the quiet output (``zoo.runtime.loader.quiet``,
``zoo.console.python_warnings``) sets ``warnings.showwarning``, Python's documented hook,
loggers' levels and TFDS's progress bar within a block and puts them back after it
(``--verbose`` is its switch); where tables go under ``--json`` is
``zoo.console.tables_on_stderr``, a block around each command; a Ctrl-C is held while an
epoch is saved (``zoo.train.durability.interrupts.deferred``), SIGINT's handler put back.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from zoo.runtime import deferred

#: The environment variable that turns every patch off.
ENV = "ZOO_NO_PATCHES"
#: Imported by Keras as it loads, used by zoo only to draw: imported on first use.
DEFERRED = ("matplotlib",)

_own = False


def enabled() -> bool:
    """Whether zoo patches anything: unless ``ZOO_NO_PATCHES`` is set (not to ``0``)."""
    return os.environ.get(ENV, "") in ("", "0")


@contextlib.contextmanager
def command_process() -> Iterator[None]:
    """The block is the ``zoo`` command's own process, which :func:`freeze` may tune;
    once it ends (every file written and closed), everything is frozen."""
    global _own
    _own = True
    yield
    freeze()  # the interpreter's exit then has nothing to walk


@contextlib.contextmanager
def loading_tensorflow() -> Iterator[None]:
    """Around TensorFlow's import: the patches that speed it up, none when switched off."""
    if not enabled():
        yield
        return
    with collection_paused():
        with matplotlib_deferred():
            yield
        freeze()  # before the collector resumes, so its resuming pass has nothing to walk


@contextlib.contextmanager
def matplotlib_deferred() -> Iterator[None]:
    """Keras imports ``matplotlib.pyplot`` as it loads, for plots zoo never draws: give it
    stand-ins that import the real module on first use (:mod:`zoo.runtime.deferred`)."""
    with deferred.deferred(DEFERRED):
        yield


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection within the block: importing TensorFlow creates objects
    fast enough to start many full collections, each walking all made so far. A collector
    the program had disabled stays disabled."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def freeze() -> None:
    """In the ``zoo`` command's own process only, take every object there is now out of
    the collector's passes (``gc.freeze``): TensorFlow's live as long as the process, and
    walking them costs every full collection; a program using zoo's API keeps its own."""
    if _own and enabled():
        gc.freeze()


def untuned_device_datasets(untune: Callable[[Any], Any]) -> None:
    """Pass the per-device datasets a distributed input builds through ``untune``
    (``zoo.runtime.loader.without_autotuning``): their tuning thread can stall a pass's
    end, and TensorFlow offers no option for them, so its private builder is wrapped, once."""
    if not enabled():
        return
    from tensorflow.python.data.ops import multi_device_iterator_ops as devices

    build = getattr(devices, "_create_device_dataset", None)
    if build is None or getattr(build, "_zoo_untuned", False):
        return  # a TensorFlow without it is left as it is; a wrapped one is done

    @functools.wraps(build)
    def untuned(*args: Any, **kwargs: Any) -> Any:
        return untune(build(*args, **kwargs))

    untuned._zoo_untuned = True  # type: ignore[attr-defined]  # a mark: wrapped once
    devices._create_device_dataset = untuned


#: One indexed conversion at a time: each puts back the lookup it found.
_INDEXING = threading.RLock()


@contextlib.contextmanager
def openvino_indexed() -> Iterator[None]:
    """Within the block, OpenVINO's TensorFlow reader finds each variable by index rather
    than by walking the graph's captures and variables on every call (quadratic in the
    variables); call it once OpenVINO is loaded (``zoo.runtime.conversion.openvino``).

    The index answers what the walk would (the first capture of a name, the first
    variable of a handle) and reads each variable once. Conversions in other threads
    wait for the block to end. An OpenVINO without that method is left as it is.
    """
    if "openvino" not in sys.modules:  # never loaded here: with its telemetry, it would be
        yield
        return
    try:
        from openvino.frontend.tensorflow.node_decoder import TFGraphNodeDecoder
    except ImportError:
        yield
        return
    with _INDEXING:
        walked = TFGraphNodeDecoder.__dict__.get("get_variable")
        if not enabled() or not isinstance(walked, staticmethod):
            yield
            return
        TFGraphNodeDecoder.get_variable = staticmethod(_GraphIndexes().get_variable)
        try:
            yield
        finally:
            TFGraphNodeDecoder.get_variable = walked


class _GraphIndexes:
    """What ``TFGraphNodeDecoder.get_variable`` answers, looked up by name and handle.

    Keyed by the graph itself (graphs hash by identity), so each graph's entries hold it
    alive for as long as they are used.
    """

    def __init__(self) -> None:
        self._captured: dict[Any, dict[str, Any]] = {}
        self._handles: dict[Any, dict[int, Any]] = {}
        self._values: dict[int, Any] = {}

    def get_variable(self, operation: Any) -> Any:
        graph = operation.graph
        if not hasattr(graph, "captures"):
            return None
        if graph not in self._captured:
            captures = reversed(list(graph.captures))
            self._captured[graph] = {inner.name: outer for outer, inner in captures}
        outer = self._captured[graph].get(operation.outputs[0].name)
        if outer is None or outer.dtype.name != "resource":
            return outer
        if graph not in self._handles:
            variables = reversed(list(graph.variables))
            self._handles[graph] = {id(v.handle): v for v in variables}
        variable = self._handles[graph].get(id(outer))
        if variable is None:
            return None
        if id(variable) not in self._values:  # read once: the converter asks again for shapes
            self._values[id(variable)] = variable.read_value_no_copy()
        return self._values[id(variable)]
