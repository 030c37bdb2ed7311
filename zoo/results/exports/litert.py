"""LiteRT (TFLite) exports: written by Keras' own exporter, run by the LiteRT runtime.

The file takes RGB pixels (0..255) ``[batch, size, size, 3]`` at the training size,
float32 or, for ``--quantize int8 --io uint8``, uint8; it returns the probabilities
(uint8 ones too, for uint8). It holds built-in LiteRT ops only: the standalone runtime
(``ai_edge_litert``) has no TensorFlow ("Flex") kernels, so a layer without a built-in
op fails the export, naming the layer, rather than the deployment. Opening and running
it never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.results.exports.extras import require

if TYPE_CHECKING:
    import keras
    import numpy as np

SUFFIX = ".tflite"
QUANTIZATIONS = ("float16", "dynamic", "int8")
IO_DTYPES = ("float32", "uint8")
#: How to get a good file again.
FIX = "export it again: zoo export RUN --format litert"
#: What a model must hold to convert, and where it goes otherwise.
BUILT_IN = "layers LiteRT runs with its built-in ops"
OTHER_FORMATS = "export it as onnx or openvino, or savedmodel"
#: Ops whose weights (their second input) full-integer quantization makes int8.
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
#: A converter error about one op: ``error: loc(<where>): '<op>' op <message>``.
_OP_ERROR = re.compile(r"error: loc\((?P<loc>.*)\): '(?P<op>[\w.]+)' op (?P<message>.*)")
_NO_KERNEL = "is neither a custom op nor a flex op"


def write_litert(
    model: keras.Model,
    path: Path,
    *,
    quantize: str | None = None,
    calibration: Callable[[], Iterable[np.ndarray]] | None = None,
    io_dtype: str = "float32",
) -> None:
    """Write ``model`` as a LiteRT flatbuffer at ``path``, with built-in ops only.

    Args:
        model: Float32 pixels ``[batch, size, size, 3]`` in (preprocessing inside),
            probabilities ``[batch, classes]`` out.
        path: Where to write; it ends in ``.tflite``.
        quantize: ``None`` (float32), ``"float16"`` (float16 weights), ``"dynamic"``
            (int8 weights, float activations) or ``"int8"`` (integers throughout).
        calibration: For int8: returns uint8 images ``[size, size, 3]``, one per item,
            from which the converter measures the activations' ranges.
        io_dtype: ``"uint8"`` makes an int8 file take and return uint8.

    Raises:
        ZooError: a bad option, a layer LiteRT has no built-in op for (named), or an
            int8 file the converter left unquantized.
    """
    options = _converter_options(quantize, calibration, io_dtype)
    spec = _input_spec(model, path)
    try:
        with _silenced():  # the converter's C++ logs on descriptor 2, stdout is zoo's data
            model.export(
                str(path), format="litert", verbose=False, input_signature=[spec], **options
            )
    except Exception as exc:  # the converter raises anything, its errors have no common base
        raise _not_converted(model, exc) from None
    if quantize == "int8":
        _check_int8(path)


def open_litert(path: Path) -> LiteRtRunner:
    """Open ``path`` in the LiteRT interpreter (``ai_edge_litert``), never TensorFlow.

    The runtime verifies the flatbuffer before it reads anything from it; one blank
    image is run, since a file with TensorFlow ops opens and only fails when run.

    Raises:
        ZooError: ai_edge_litert is not installed, or the file is not a LiteRT image
            classifier this runtime runs.
    """
    try:
        runner = LiteRtRunner(_interpreter(path, "running a LiteRT export"))
        runner(_blank(runner))
    except (ValueError, RuntimeError) as exc:
        raise _not_litert(path, exc) from None
    return runner


class LiteRtRunner:
    """A .tflite file in the LiteRT interpreter on the CPU: pixels in, float32
    probabilities out, (de)quantized with the file's own scale and zero point.

    Attributes:
        input_dtype: ``"float32"``, ``"uint8"`` or ``"int8"``.
        image_size: The side of the square images the file takes.
        outputs: The number of probability columns.
    """

    def __init__(self, interpreter: Any) -> None:
        import numpy as np

        self._interpreter = interpreter
        [self._input] = interpreter.get_input_details()
        [self._output] = interpreter.get_output_details()
        shape = list(self._input["shape_signature"])
        columns = list(self._output["shape_signature"])
        if len(shape) != 4 or shape[1] != shape[2] or shape[1] < 1 or shape[3] != 3:
            raise ValueError(f"input shape {shape}, not [batch, size, size, 3]")
        if len(columns) != 2 or columns[1] < 1:
            raise ValueError(f"output shape {columns}, not [batch, classes]")
        self.input_dtype = np.dtype(self._input["dtype"]).name
        self.image_size = int(shape[1])
        self.outputs = int(columns[1])
        self._batch = int(self._input["shape"][0])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Probabilities ``[n, outputs]`` of ``images``: ``[n, size, size, 3]`` pixels
        (0..255), uint8 or float32."""
        import numpy as np

        images = np.asarray(images)
        if len(images) == 0:
            return np.zeros((0, self.outputs), np.float32)
        self._resize(len(images))
        self._interpreter.set_tensor(self._input["index"], _quantized(images, self._input))
        self._interpreter.invoke()
        return _dequantized(self._interpreter.get_tensor(self._output["index"]), self._output)

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            size = self.image_size
            self._interpreter.resize_tensor_input(self._input["index"], [batch, size, size, 3])
            self._interpreter.allocate_tensors()
            self._batch = batch


def _blank(runner: LiteRtRunner) -> np.ndarray:
    import numpy as np

    return np.zeros((1, runner.image_size, runner.image_size, 3), np.float32)


def _quantized(images: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """``images`` as the input tensor's dtype: float32 as is, else quantized with its
    scale and zero point (uint8 pixels are unchanged when those are 1 and 0)."""
    import numpy as np

    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if dtype == np.float32 or not scale:
        return images.astype(dtype, copy=False)
    limits = np.iinfo(dtype)
    levels = np.round(images.astype(np.float32) / scale + zero_point)
    return np.clip(levels, limits.min, limits.max).astype(dtype)


def _dequantized(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    import numpy as np

    scale, zero_point = detail["quantization"]
    if values.dtype == np.float32 or not scale:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def _interpreter(path: Path, needed_for: str) -> Any:
    """``path`` in a LiteRT interpreter with its tensors allocated, on every core."""
    litert = require("ai_edge_litert.interpreter", "litert", needed_for)
    with _silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        interpreter = litert.Interpreter(model_path=str(path), num_threads=os.cpu_count() or 1)
        interpreter.allocate_tensors()
    return interpreter


def _not_litert(path: Path, exc: BaseException) -> ZooError:
    reason = " ".join(str(exc).split())[:300]
    return ZooError(
        f"{path} is not a model the LiteRT runtime runs: {type(exc).__name__}: {reason}",
        expected="a .tflite file zoo export wrote",
        fix=FIX,
        got=str(path),
    )


# --- Writing ---------------------------------------------------------------------------


def _converter_options(
    quantize: str | None,
    calibration: Callable[[], Iterable[np.ndarray]] | None,
    io_dtype: str,
) -> dict[str, Any]:
    """The TFLite converter's settings for ``quantize``, as Keras' exporter takes them.

    Keras adds TensorFlow ops (SELECT_TF_OPS) unless told otherwise; these name the
    built-in ops alone.
    """
    _check_options(quantize, calibration, io_dtype)
    import tensorflow as tf

    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    target_spec: dict[str, Any] = {"supported_ops": ops}
    options: dict[str, Any] = {"target_spec": target_spec}
    if quantize is not None:
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        target_spec["supported_types"] = [tf.float16]
    if quantize == "int8" and calibration is not None:
        ops.append(tf.lite.OpsSet.TFLITE_BUILTINS_INT8)
        options["representative_dataset"] = _representative(calibration)
    if io_dtype == "uint8":
        options["inference_input_type"] = options["inference_output_type"] = tf.uint8
    return options


def _check_options(
    quantize: str | None, calibration: Callable[[], Iterable[np.ndarray]] | None, io_dtype: str
) -> None:
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ZooError(
            f"LiteRT exports have no '{quantize}' quantization.",
            expected=f"one of {', '.join(QUANTIZATIONS)}, or none for float32",
            fix="pass one of those, or leave the quantization out",
            got=quantize,
        )
    if io_dtype not in IO_DTYPES or (io_dtype != "float32" and quantize != "int8"):
        raise ZooError(
            "a LiteRT file takes float32 pixels, or uint8 ones when fully quantized (int8).",
            expected="io_dtype float32, or uint8 together with int8 quantization",
            fix="quantize to int8, or keep float32 input and output",
            got=io_dtype,
        )
    if quantize == "int8" and calibration is None:
        raise ZooError(
            "int8 quantization needs calibration images, to measure the activations' ranges.",
            expected="a calibration that yields uint8 images [size, size, 3]",
            fix="pass calibration images (zoo export --calibration FOLDER)",
            got=None,
        )


def _representative(
    calibration: Callable[[], Iterable[np.ndarray]],
) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The converter's representative dataset: each image as float32 ``[1, S, S, 3]``."""
    import numpy as np

    def dataset() -> Iterator[list[np.ndarray]]:
        for image in calibration():
            yield [np.asarray(image, np.float32)[None]]

    return dataset


def _input_spec(model: keras.Model, path: Path) -> Any:
    """Float32 ``[batch, S, S, 3]`` at the model's fixed size; batch left open."""
    import tensorflow as tf

    shape = tuple(model.inputs[0].shape[1:])
    if path.suffix != SUFFIX or None in shape:
        raise ZooError(
            "a LiteRT file is written with the .tflite suffix, from a model of fixed size.",
            expected=f"a path ending in {SUFFIX} and an input [batch, size, size, 3]",
            fix="build the model at the run's image size and write it to model.tflite",
            got=f"{path.name}, input {shape}",
        )
    return tf.TensorSpec((None, *shape), tf.float32, name="image")


def _not_converted(model: keras.Model, exc: BaseException) -> ZooError:
    """The converter's failure, naming the layers of the ops it could not convert."""
    failures = _failed_ops(str(exc), _layer_names(model))
    if not failures:
        reason = " ".join(str(exc).split())[:300]
        return ZooError(
            f"the model did not convert to LiteRT: {type(exc).__name__}: {reason}",
            expected=BUILT_IN,
            fix=OTHER_FORMATS,
            got=model.name,
        )
    found = "; ".join(
        f"{op} in layer {layer}" + (f" ({message})" if message else "")
        for layer, op, message in failures
    )
    return ZooError(
        f"the model did not convert to LiteRT: LiteRT has no built-in kernel for {found}, and "
        "its runtime runs no TensorFlow ops.",
        expected=BUILT_IN,
        fix=OTHER_FORMATS,
        got=", ".join(f"{layer} ({op})" for layer, op, _ in failures),
    )


def _failed_ops(text: str, layers: set[str]) -> list[tuple[str, str, str]]:
    """``(layer, op, message)`` for each op the converter's error ``text`` names."""
    failures: dict[tuple[str, str, str], None] = {}
    for match in _OP_ERROR.finditer(text):
        scopes = re.findall(r'"([^"]*/[^"]*)"', match["loc"]) or [match["loc"]]
        layer = _layer_of(scopes[0].split("@")[0], layers)
        message = match["message"].strip()
        failures[layer, match["op"], "" if _NO_KERNEL in message else message] = None
    return list(failures)


def _layer_of(scope: str, layers: set[str]) -> str:
    """The innermost layer in an op's name scope (``model_1/my_layer_1/Op``).

    TensorFlow makes each scope unique with ``_1``, ``_2``..., so those are tried off.
    """
    for part in reversed(scope.split("/")):
        name = part
        while name not in layers and re.fullmatch(r".+_\d+", name):
            name = name.rsplit("_", 1)[0]
        if name in layers:
            return name
    return scope


def _layer_names(model: keras.Model) -> set[str]:
    """The names of ``model`` and of every layer in it, nested models' included."""
    names, stack = set(), [model]
    while stack:
        layer = stack.pop()
        names.add(layer.name)
        stack.extend(getattr(layer, "layers", []))
    return names


def _check_int8(path: Path) -> None:
    """Remove and refuse an int8 file whose convolutions or dense layers kept float
    weights, as the converter sometimes leaves them without a word
    (tensorflow/tensorflow#57619)."""
    import numpy as np

    interpreter = _interpreter(path, "checking an int8 LiteRT export")
    tensors = {tensor["index"]: tensor for tensor in interpreter.get_tensor_details()}
    # The public API lists tensors, not ops; this is how TensorFlow's own tests list them.
    weights = [
        tensors[op["inputs"][1]]
        for op in interpreter._get_ops_details()
        if op["op_name"] in WEIGHTED_OPS
    ]
    floats = [tensor["name"] for tensor in weights if tensor["dtype"] != np.int8]
    if floats or not any(tensor["dtype"] == np.int8 for tensor in tensors.values()):
        path.unlink()
        raise ZooError(
            "the converter wrote an int8 LiteRT file whose weights are not all int8.",
            expected="int8 weights in every convolution and dense layer",
            fix="export without --quantize, or with float16 or dynamic; or try another "
            "calibration folder",
            got=floats or str(path),
        )


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """File descriptors 1 and 2 to the null device, where C++ code writes its logs."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        saved = [os.dup(descriptor) for descriptor in (1, 2)]
    except OSError:  # no such descriptors (embedded interpreters): nothing to silence
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for descriptor in (1, 2):
            os.dup2(null, descriptor)
        yield
    finally:
        for descriptor, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, descriptor)
            os.close(copy)
        os.close(null)
