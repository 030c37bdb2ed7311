"""OpenVINO IR exports: ``NAME.xml`` (the graph) with ``NAME.bin`` (the weights) beside it.

:func:`write_openvino` converts a Keras image classifier with zoo's own conversion
(:func:`zoo.runtime.conversion.convert`), optionally quantizes it (float16 weights, or
int8 by NNCF's post-training quantization on calibration images) and stores zoo's
metadata in the model's ``rt_info``. :func:`open_openvino` and :func:`read_metadata`
read a file zoo did not necessarily write: damage of any kind is a :class:`ZooError`.
Reading and running need OpenVINO only, never TensorFlow.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError, closest, one_of
from zoo.results.exports.extras import require
from zoo.runtime import conversion

if TYPE_CHECKING:
    import keras
    import numpy as np

#: The graph's file; the weights go beside it with the suffix ``.bin``.
SUFFIX = ".xml"
#: What ``quantize`` may ask for; ``None`` keeps float32 weights.
QUANTIZATIONS = ("float16", "int8")
#: The ``rt_info`` section that holds zoo's metadata.
SECTION = "zoo"
#: The graph's XML alone (the weights are in the .bin): about 1 KB a layer, so 10 MB
#: for a network of ten thousand layers; more than 256 MiB is not an export of zoo's.
MAX_XML_BYTES = 256 * 2**20

_EXPECTED = "an OpenVINO model zoo export wrote: NAME.xml with its NAME.bin beside it"
_FIX = "export it again: zoo export RUN --format openvino"


def write_openvino(
    model: keras.Model,
    path: Path,
    *,
    quantize: str | None = None,
    calibration: Callable[[], Iterable[np.ndarray]] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``model`` as OpenVINO IR: ``path`` (``.xml``) and its ``.bin`` beside it.

    Args:
        model: A functional Keras model from float32 RGB pixels ``[batch, H, W, 3]``
            (0..255; ``H`` and ``W`` may be ``None``) to probabilities ``[batch, k]``.
        path: The ``.xml`` file to write.
        quantize: ``None`` for float32 weights, ``"float16"`` for weights stored in
            float16, ``"int8"`` for int8 weights and activations (NNCF).
        calibration: For int8: yields uint8 images ``[S, S, 3]``, all of which
            calibrate the activations' ranges.
        metadata: Strings stored in the model's ``rt_info`` (``zoo`` section), read
            back by :func:`read_metadata`.

    Raises:
        ZooError: An unknown ``quantize``; int8 without calibration images; int8
            without NNCF installed.
    """
    _check_quantization(quantize)
    int8 = _int8(calibration) if quantize == "int8" else None
    ov = conversion.openvino()
    ov_model = _first_output(conversion.convert(model))
    if int8 is not None:
        ov_model = int8(ov_model)
    for key, value in (metadata or {}).items():
        ov_model.set_rt_info(value, [SECTION, key])
    ov.save_model(ov_model, str(path), compress_to_fp16=quantize == "float16")


def open_openvino(path: Path) -> OpenVinoRunner:
    """The export at ``path`` (``.xml``), compiled for this machine's CPU.

    Raises:
        ZooError: ``path`` or its ``.bin`` is missing, damaged or not a zoo classifier.
    """
    model, shape = _read(path)
    return OpenVinoRunner(model, shape)


def read_metadata(path: Path) -> dict[str, str]:
    """What :func:`write_openvino` stored as ``metadata`` (``{}`` when nothing).

    The values are untrusted text: strip control characters before printing them.

    Raises:
        ZooError: ``path`` or its ``.bin`` is missing, damaged or not a zoo classifier.
    """
    model, _ = _read(path)
    if not model.has_rt_info([SECTION]):
        return {}
    stored = model.get_rt_info([SECTION]).value
    if not isinstance(stored, dict) or not all(isinstance(v, str) for v in stored.values()):
        raise _damaged(path, f"its rt_info section '{SECTION}' holds more than text")
    return {str(key): value for key, value in stored.items()}


class OpenVinoRunner:
    """An OpenVINO export compiled for the CPU: called on images, it returns probabilities.

    It computes in float32 (``INFERENCE_PRECISION_HINT``): on a CPU with bfloat16
    instructions OpenVINO's default is bfloat16, which would make a float32 export
    differ from Keras by far more than float32 rounding.

    Attributes:
        input_dtype: What the model takes: ``"float32"`` pixels 0..255.
        image_size: The square size it takes, or ``None`` when it takes any size.
        outputs: How many probabilities it returns per image.
    """

    def __init__(self, model: Any, shape: tuple[int | None, int | None, int]) -> None:
        height, width, classes = shape
        self.input_dtype = "float32"
        self.image_size = height if height is not None and height == width else None
        self.outputs = classes
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        self._compiled = conversion.core().compile_model(model, "CPU", config)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Probabilities ``[n, k]`` (float32) for ``images`` ``[n, H, W, 3]``, uint8 or
        float32 pixels 0..255."""
        import numpy as np

        result = self._compiled(np.asarray(images, dtype=np.float32))
        return np.array(result[0], dtype=np.float32)  # a copy: the next call reuses it


# Writing -------------------------------------------------------------------------------


def _check_quantization(quantize: str | None) -> None:
    """Raise a ZooError for an unknown quantization."""
    if quantize is not None and quantize not in QUANTIZATIONS:
        near = closest(quantize, QUANTIZATIONS)
        raise ZooError(
            f"OpenVINO exports have no quantization '{quantize}'"
            + (f" (did you mean '{near[0]}'?)." if near else "."),
            expected=f"{one_of(QUANTIZATIONS)}, or none for float32 weights",
            fix=f"quantize with one of: {', '.join(QUANTIZATIONS)}",
            got=quantize,
        )


def _first_output(ov_model: Any) -> Any:
    """``ov_model`` with only its first output, the probabilities, named ``probabilities``.

    The converter also makes outputs of the shape arithmetic inside some layers
    (Keras' ``Resizing`` gives six scalars); a deployer wants the probabilities only.
    """
    ov = conversion.openvino()
    probabilities = ov_model.output(0)
    probabilities.get_tensor().set_names({"probabilities"})
    return ov.Model([probabilities], ov_model.get_parameters(), ov_model.get_friendly_name())


def _int8(calibration: Callable[[], Iterable[np.ndarray]] | None) -> Callable[[Any], Any]:
    """What quantizes a model to int8 with NNCF, calibrated on every image given; made
    before the model converts, so that a missing NNCF or no images fail at once."""
    if calibration is None:
        raise _no_calibration("none were given")
    nncf = _nncf()
    images = list(calibration())
    if not images:
        raise _no_calibration("the calibration set is empty")
    return functools.partial(_quantized, nncf, images)


def _no_calibration(why: str) -> ZooError:
    return ZooError(
        f"int8 quantization of an OpenVINO export needs calibration images, and {why}.",
        expected="images like the model's inputs, to measure its activations' ranges",
        fix="export from a run whose dataset has test or validation images, or quantize to float16",
    )


def _quantized(nncf: ModuleType, images: list[np.ndarray], ov_model: Any) -> Any:
    """``ov_model`` quantized by ``nncf``, each of ``images`` a batch of one."""
    import numpy as np

    def batch(image: np.ndarray) -> np.ndarray:
        return np.asarray(image, dtype=np.float32)[None]

    dataset = nncf.Dataset(images, batch)
    with _nncf_quiet():
        return nncf.quantize(
            ov_model, dataset, subset_size=len(images), ignored_scope=_classifier(nncf, ov_model)
        )


def _classifier(nncf: ModuleType, ov_model: Any) -> Any:
    """The last matrix product (the head's dense layer), kept in float: with its input,
    the pooled features, rounded to 8 bits, the demo's pretrained run lost 14 accuracy
    points (72% for 86%) where LiteRT's int8 lost none; kept float, none. It is one
    small layer, so the file is as small and as fast."""
    products = [op for op in ov_model.get_ordered_ops() if op.get_type_name() == "MatMul"]
    names = [products[-1].get_friendly_name()] if products else []
    return nncf.IgnoredScope(names=names)


@contextlib.contextmanager
def _telemetry_blocked() -> Iterator[None]:
    """Make ``import openvino_telemetry`` fail within the block, unless it is loaded.

    NNCF reports each quantization to Google Analytics unless the user opted out, and
    already on import writes a client ID under ``~/intel``; it uses a no-op stand-in
    when that package does not import (as :func:`zoo.runtime.conversion.openvino` has
    OpenVINO's converter do).
    """
    modules: dict[str, Any] = sys.modules
    blocked = "openvino_telemetry" not in modules
    if blocked:
        modules["openvino_telemetry"] = None  # an import of it raises ImportError
    try:
        yield
    finally:
        if blocked and modules.get("openvino_telemetry", False) is None:
            del modules["openvino_telemetry"]


def _nncf() -> ModuleType:
    """``nncf``, imported with its usage telemetry off, even when it was imported before."""
    with _telemetry_blocked():
        nncf = require("nncf", "openvino-int8", "int8 quantization of an OpenVINO export")
    with contextlib.suppress(ImportError, AttributeError):  # a later NNCF that moved it
        decorator: Any = importlib.import_module("nncf.telemetry.decorator")
        stub = importlib.import_module("nncf.telemetry.wrapper").NNCFTelemetryStub()
        decorator.telemetry = stub  # what its tracked functions report to
    return nncf


@contextlib.contextmanager
def _nncf_quiet() -> Iterator[None]:
    """NNCF's log lines and progress bars kept off stdout, which is zoo's data.

    Its logger writes to the ``sys.stdout`` of when it was imported, its progress bars
    to the ``sys.stdout`` of when they draw.
    """
    logger = logging.getLogger("nncf")
    disabled = logger.disabled
    logger.disabled = True
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.disabled = disabled


# Reading -------------------------------------------------------------------------------


def _read(path: Path) -> tuple[Any, tuple[int | None, int | None, int]]:
    """The OpenVINO ``Model`` at ``path``, read by OpenVINO's IR reader alone, and its
    shape (:func:`_classifier_shape`).

    Not ``Core.read_model``: when its IR reader refuses a file, it tries every other
    reader (TensorFlow, ONNX, PaddlePaddle, TFLite), so a damaged or hostile ``.xml``
    would be parsed as those formats too (and a folder named ``.xml`` read as a
    SavedModel). The IR reader parses with pugixml, which expands no DTD entities: an
    external entity or a billion-laughs ``.xml`` stays literal text (tested).
    """
    _check_files(path)
    reader = _ir_reader()
    try:
        model = reader.convert(reader.load(str(path)))
    except RuntimeError as exc:  # how OpenVINO reports every kind of damage
        raise _damaged(path, _why(exc)) from None
    return model, _classifier_shape(model, path)


def _check_files(path: Path) -> None:
    """Raise a ZooError unless ``path`` is a file of a bounded size with its ``.bin``."""
    weights = path.with_suffix(".bin")
    if not path.is_file():
        raise _damaged(path, "it does not exist or is not a file")
    if path.stat().st_size > MAX_XML_BYTES:
        raise _damaged(path, f"it is larger than {MAX_XML_BYTES // 2**20} MiB")
    if not weights.is_file():
        raise _damaged(path, f"its weights, {weights.name}, are not beside it")


@functools.cache
def _ir_reader() -> Any:
    """OpenVINO's frontend for its own IR format."""
    return conversion.openvino().frontend.FrontEndManager().load_by_framework("ir")


def _classifier_shape(model: Any, path: Path) -> tuple[int | None, int | None, int]:
    """``(height, width, classes)`` of an image classifier (``None``: any size); raise a
    ZooError for any other model."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise _damaged(path, "it does not have one input and one output")
    images, scores = model.input(0).get_partial_shape(), model.output(0).get_partial_shape()
    if images.rank != 4 or images[3] != 3:  # an exact match: never a dynamic 3 or a range
        raise _damaged(path, f"its input is not RGB images [batch, H, W, 3] ({images})")
    if scores.rank != 2 or scores[1].is_dynamic:
        raise _damaged(path, f"its output is not probabilities [batch, k] ({scores})")
    height, width = (None if d.is_dynamic else d.get_length() for d in (images[1], images[2]))
    return height, width, scores[1].get_length()


def _why(exc: RuntimeError) -> str:
    """OpenVINO's own reason, without the source locations around it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith(("Check '", "Exception from"))]
    return (reasons[-1] if reasons else type(exc).__name__).rstrip(".!")[:200]


def _damaged(path: Path, why: str) -> ZooError:
    """The error for an export that cannot be read: ``why`` says what is wrong."""
    return ZooError(
        f"The OpenVINO export {path.name} cannot be read: {why}.",
        expected=_EXPECTED,
        fix=_FIX,
        got=str(path),
    )
