"""ONNX exports: written by Keras' own exporter (tf2onnx), run by ONNX Runtime.

The file takes float32 RGB pixels (0..255) of any size, ``[batch, height, width, 3]``;
resizing and the backbone's preprocessing are inside it. zoo's signature
(:mod:`zoo.results.exports.signature`) is stored in the file's ``metadata_props`` under
``zoo``, which ONNX Runtime reads back without the ``onnx`` package.
"""

from __future__ import annotations

import contextlib
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

    Raises:
        ZooError: tf2onnx or onnx is not installed, or the model does not convert
            (the message keeps the converter's reason).
    """
    require("tf2onnx", "onnx", "an ONNX export")
    onnx = require("onnx", "onnx", "an ONNX export")
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32, name="image")
    try:
        # tf2onnx prints to stdout; Keras' bridge to it warns of NumPy's np.object.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model.export(str(path), format="onnx", input_signature=[spec], verbose=False)
    except Exception as exc:
        raise ZooError(
            f"the model did not convert to ONNX: {type(exc).__name__}: {exc}",
            expected="layers tf2onnx converts",
            fix="export it as openvino, litert or savedmodel instead",
            got=model.name,
        ) from exc
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


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
