"""Converting a Keras model to OpenVINO, quickly and without telemetry.

:func:`convert` is what :class:`zoo.runtime.runners.OpenVinoModel` compiles: the model traced
by zoo (:func:`traced`) and read by OpenVINO's TensorFlow converter, with two of the
converter's costs taken off (:func:`variables_indexed`). OpenVINO itself is loaded
with its usage telemetry off (:func:`openvino`), and the process keeps one ``Core``
(:func:`core`). Measured on two cores, ResNet50 at 100x100 converts in about 0.96 s;
the converter as it comes took 2.2 s with its telemetry forking the process.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras


def convert(model: keras.Model) -> Any:
    """``model`` as an OpenVINO ``Model`` with a dynamic batch (the first input's)."""
    ov = openvino()  # first: what converts must not load OpenVINO's telemetry
    graph = traced(model)
    with variables_indexed():
        return ov.convert_model(graph)


def traced(model: keras.Model) -> Any:
    """``model``'s inference graph, for any batch size, as the converter reads it.

    Given the Keras model itself, the converter wraps it in a ``tf.function`` of its
    own with AutoGraph on, and AutoGraph rewrites that wrapper's source before tracing
    it (about 0.1 s of ResNet50's conversion, measured in new processes). The model's
    layers are never rewritten (AutoGraph calls Keras as it is), so tracing with it off
    gives the same graph; features are bit-identical (tested).
    """
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype)
    forward = tf.function(lambda images: model(images, training=False), autograph=False)
    return forward.get_concrete_function(spec)


@functools.cache
def core() -> Any:
    """The process's one OpenVINO ``Core``, kept until the process ends.

    OpenVINO's CPU plugin gives the thread that creates a ``Core`` its own signal stack
    and puts the previous one back when that ``Core`` is destroyed. Two ``Core`` objects
    destroyed in the order they were made leave the thread on a freed stack, and the
    next signal it takes (a Ctrl-C) kills the process with a segmentation fault instead
    of stopping the run cleanly. One ``Core``, never destroyed, cannot do that.
    """
    return openvino().Core()


#: The converter's modules that send OpenVINO's usage telemetry, each through its ``tm``.
_TELEMETRY_USERS = (
    "openvino.tools.ovc.convert_impl",
    "openvino.tools.ovc.telemetry_utils",
    "openvino.tools.ovc.utils",
)


@functools.cache
def openvino() -> Any:
    """``openvino``, imported with its usage telemetry off.

    OpenVINO's converter reports each conversion to Google Analytics unless the user
    opted out (``opt_in_out --opt_out``), and posts every event from a forked copy of
    the process that lives up to 3 s. zoo is made for offline and air-gapped machines
    and does not report what its users run. The forks cost time as well: each copies the
    page tables of a process holding TensorFlow and a model, and makes the parent's
    writes copy-on-write while the child lives. Converting ResNet50 took 2.2 s with
    them and 1.4 s without (two cores).

    The converter uses its own no-op stand-in when the ``openvino_telemetry`` package
    does not import. zoo makes that import fail while OpenVINO loads, and points the
    converter at the stand-in when the user's code loaded OpenVINO first.
    """
    import importlib
    import sys

    modules: dict[str, Any] = sys.modules
    blocked = "openvino_telemetry" not in modules
    if blocked:
        modules["openvino_telemetry"] = None  # an import of it raises ImportError
    try:
        import openvino
    finally:
        if blocked and modules.get("openvino_telemetry", False) is None:
            del modules["openvino_telemetry"]  # code that imports it later gets it
    try:
        stub = importlib.import_module("openvino.tools.ovc.telemetry_stub")
    except ImportError:  # a later OpenVINO without the stand-in: nothing to point at
        return openvino
    for name in _TELEMETRY_USERS:
        module = modules.get(name)
        if module is not None and hasattr(module, "tm"):
            module.tm = stub
    return openvino


#: One indexed conversion at a time: each puts back the lookup it found.
_INDEXING = threading.RLock()


@contextlib.contextmanager
def variables_indexed() -> Iterator[None]:
    """Within the block, OpenVINO's TensorFlow reader finds each variable by index.

    Its ``TFGraphNodeDecoder.get_variable(operation)`` finds the variable a placeholder
    reads by walking all the graph's captures, comparing names, then all its variables;
    it is called up to four times for each placeholder, so a model with hundreds of
    variables pays for hundreds squared: 0.3 s of ResNet50's 1.2 s conversion (two
    cores). The stand-in answers the same from dictionaries built once per graph (the
    first capture of a name, and the first variable of a handle, as the walk finds
    them; a variable is read only once a resource capture matches, as the walk reads
    it). The walk also reads a variable each time the converter asks for its shape:
    ResNet50's 320 variables were read 3,500 times, 0.1 s of eager reads. The stand-in
    reads each once in the block and answers again with that value (the weights do not
    change while the model converts). Features are bit-identical (tested). Conversions
    in other threads wait for the block to end. An OpenVINO without that method is
    left as it is.
    """
    try:
        openvino()  # loaded without its telemetry before any of its modules
        from openvino.frontend.tensorflow.node_decoder import TFGraphNodeDecoder
    except ImportError:
        yield
        return
    with _INDEXING:
        walked = TFGraphNodeDecoder.__dict__.get("get_variable")
        if not isinstance(walked, staticmethod):
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
