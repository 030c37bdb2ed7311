"""Converting a Keras model to OpenVINO, quickly and without telemetry.

:func:`convert` is what :class:`zoo.runtime.runners.OpenVinoModel` compiles: the model
traced by zoo (:func:`traced`, which spares the converter's own wrapper) and read by
OpenVINO's TensorFlow converter, its variable lookup indexed
(:func:`zoo.runtime.patches.openvino_indexed`). OpenVINO itself is loaded with its usage
telemetry off (:func:`openvino`), and the process keeps one ``Core`` (:func:`core`).
What each saves is in docs/architecture.md.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from zoo.runtime import patches

if TYPE_CHECKING:
    import keras


def convert(model: keras.Model) -> Any:
    """``model`` as an OpenVINO ``Model`` with a dynamic batch (the first input's)."""
    ov = openvino()  # first: what converts must not load OpenVINO's telemetry
    graph = traced(model)
    with patches.openvino_indexed():
        return ov.convert_model(graph)


def traced(model: keras.Model) -> Any:
    """``model``'s inference graph, for any batch size, as the converter reads it.

    Given the Keras model itself, the converter wraps it in a ``tf.function`` of its
    own with AutoGraph on, and AutoGraph rewrites that wrapper's source before tracing
    it, which takes time. The model's layers are never rewritten (AutoGraph calls Keras
    as it is), so tracing with it off gives the same graph; features are bit-identical
    (tested).
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
    writes copy-on-write while the child lives.

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
