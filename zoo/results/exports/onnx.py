"""ONNX exports: the frozen inference graph converted by tf2onnx, run by ONNX Runtime.

The file takes float32 RGB pixels (0..255) of any size, ``[batch, height, width, 3]``;
resizing and the backbone's preprocessing are inside it. zoo's signature
(:mod:`zoo.results.exports.signature`) is stored in the file's ``metadata_props`` under
``zoo``, which ONNX Runtime reads back without the ``onnx`` package.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.results.exports.extras import require

if TYPE_CHECKING:
    import keras
    import numpy as np

SUFFIX = ".onnx"
QUANTIZATIONS: tuple[str, ...] = ()
#: How to get a good file again.
FIX = "export it again: zoo export RUN --format onnx --output DIR"


def write_onnx(model: keras.Model, path: Path, *, metadata: Mapping[str, str]) -> None:
    """Write ``model`` (float32 pixels of any size in) as ONNX, with ``metadata`` inside.

    The model is traced for inference and frozen (variables and captured tensors become
    constants) before tf2onnx converts the graph. Keras' own ``model.export(format="onnx")``
    hands tf2onnx the unfrozen function, and a tensor a layer captured (KerasHub's
    position ids) becomes a second input of the file that nothing feeds.

    Raises:
        ZooError: tf2onnx or onnx is not installed, or the model does not convert
            (the message keeps the converter's reason, or names the op ONNX lacks).
    """
    tf2onnx = require("tf2onnx", "onnx", "an ONNX export")
    onnx = require("onnx", "onnx", "an ONNX export")
    _teach_tf2onnx_erfc()
    try:
        graph, inputs, outputs = _frozen(model)
        # tf2onnx prints to stdout and logs; Keras' NumPy 2 patch warns of np.object.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            _numpy2_patch()
            tf2onnx.convert.from_graph_def(
                graph, input_names=inputs, output_names=outputs, output_path=str(path)
            )
    except Exception as exc:
        raise ZooError(
            f"the model did not convert to ONNX: {type(exc).__name__}: {exc}",
            expected="layers tf2onnx converts",
            fix="export it as openvino, litert or savedmodel instead",
            got=model.name,
        ) from exc
    proto = onnx.load(str(path))
    _refuse_unknown_ops(proto, onnx)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def _frozen(model: keras.Model) -> tuple[Any, list[str], list[str]]:
    """``model``'s inference graph with constants for its variables, and its tensor names."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32, name="image")
    forward = tf.function(lambda image: model(image, training=False), autograph=False)
    frozen = convert_variables_to_constants_v2(forward.get_concrete_function(spec))
    names = [[t.name for t in tensors] for tensors in (frozen.inputs, frozen.outputs)]
    return frozen.graph.as_graph_def(), names[0], names[1]


def _numpy2_patch() -> None:
    """Keras' fix of tf2onnx 1.17 for NumPy 2 (``np.cast``, ``np.object``), where it is."""
    try:
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:  # a later Keras: tf2onnx fixed, or the fix moved
        return
    patch_tf2onnx()


def _refuse_unknown_ops(proto: Any, onnx: Any) -> None:
    """tf2onnx leaves an op it cannot convert in the graph under its TensorFlow name, and
    ONNX Runtime refuses the file; say so at export, naming the op and where it is."""
    unknown = [
        node for node in proto.graph.node if not onnx.defs.has(node.op_type, node.domain or "")
    ]
    if unknown:
        node = unknown[0]
        ops = sorted({n.op_type for n in unknown})
        raise ZooError(
            f"the model uses TensorFlow ops ONNX has no equivalent for ({', '.join(ops)}), "
            f"first at {node.name}.",
            expected="layers tf2onnx converts to standard ONNX ops",
            fix="export it as openvino, litert or savedmodel instead",
            got=node.name,
        )


@functools.cache
def _teach_tf2onnx_erfc() -> None:
    """Convert TensorFlow's ``Erfc`` as ``1 - Erf``: exact GELU (ViT, DeiT, DINOv2 and CLIP
    use it) is ``0.5 * x * erfc(-x / sqrt(2))`` in TensorFlow, and tf2onnx 1.17 has no
    handler for ``Erfc``, so it would leave an op ONNX lacks."""
    import numpy as np
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:
        @classmethod
        def version_9(cls, ctx: Any, node: Any, **_: Any) -> None:
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            node.type = "Erf"
            one = ctx.make_const(utils.make_name("erfc_one"), np.array(1, dtype=dtype))
            inputs = [one.output[0], node.output[0]]
            name = utils.make_name(f"{node.name}_one_minus")
            ctx.insert_new_node_on_output("Sub", node.output[0], inputs=inputs, name=name)


class OnnxRunner:
    """An ONNX file in ONNX Runtime on the CPU: pixels in, float32 probabilities out."""

    input_dtype = "float32"

    def __init__(self, session: Any) -> None:
        self._session = session
        [image] = session.get_inputs()
        self._input = image.name
        height = image.shape[1]
        self.image_size: int | None = height if isinstance(height, int) else None
        self.outputs = int(session.get_outputs()[0].shape[-1])
        self.metadata: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import numpy as np

        feed = {self._input: np.asarray(images, dtype=np.float32)}
        return np.asarray(self._session.run(None, feed)[0], dtype=np.float32)


def open_onnx(path: Path) -> OnnxRunner:
    """Open ``path`` in ONNX Runtime (never TensorFlow).

    The file is read into memory and handed over as bytes, so a file from someone else
    cannot make the runtime read "external data" from paths it names.

    Raises:
        ZooError: onnxruntime is not installed, or the file is not an ONNX model with
            one image input.
    """
    ort = require("onnxruntime", "onnx", "running an ONNX export")
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.log_severity_level = 3  # errors only: its warnings go to stderr unasked
    try:
        data = path.read_bytes()
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        return OnnxRunner(session)
    except Exception as exc:
        raise not_onnx(path, exc) from None


def not_onnx(path: Path, exc: BaseException) -> ZooError:
    reason = " ".join(str(exc).split())[:300]
    return ZooError(
        f"{path} is not an ONNX model ONNX Runtime can run: {type(exc).__name__}: {reason}",
        expected="a model.onnx zoo export wrote, with one image input",
        fix=FIX,
        got=str(path),
    )
