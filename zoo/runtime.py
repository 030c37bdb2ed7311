"""Where a frozen model runs: TensorFlow, or OpenVINO on the CPU.

A frozen backbone only predicts, so its features need not come from TensorFlow:
OpenVINO's CPU runtime computes the same function faster (ResNet50 at 100x100 on two
AVX-512 cores: about 1.4x TensorFlow's rate in float32, 2.5x in bfloat16; BENCHMARKS.md).
``--runtime`` chooses, for feature extraction and ``zoo predict``:

- ``tensorflow``: the Keras model itself.
- ``openvino``: the Keras model converted in memory by ``openvino.convert_model``
  (the preprocessing and the backbone, KerasHub's included), compiled for the batch
  shape (static shapes are about 10% faster than a dynamic batch), one synchronous
  request with the ``LATENCY`` hint (the ``THROUGHPUT`` hint pays only with several
  requests in flight, and was slower with one). Its batches come from tf.data with
  tf.data's autotuning off: on, the iterator's end took 3.5 s in about half the
  passes over a split while OpenVINO ran in the process (measured on two cores; never
  in zoo's TensorFlow extraction), so a pass of 1,600 images ran at 157 images/s where its
  batches ran at 240, as fast as the same batches in memory (245). Off, no pass
  stalled; the pipeline's parallelism stays what AUTOTUNE starts with, plenty for
  decoding, which is 2% of the work.
- ``auto`` (the default): ``openvino`` when it is installed, nothing runs on a GPU
  and there are images enough to repay the conversion (:data:`WORTH_CONVERTING`),
  else ``tensorflow``.

A model that fails to convert runs on TensorFlow instead, and the choice says why.
float32 is the default (features within 1e-3 relative of TensorFlow's; tested);
bfloat16 (``--runtime-precision bfloat16``) is about twice as fast again on CPUs with
BF16 instructions, with features about 1% off; OpenVINO runs float32 where the CPU
has none, and the choice says so.

OpenVINO is an extra (``pip install 'zoo[openvino]'``): it only helps CPUs, and zoo
works the same without it. zoo loads it with its usage telemetry off (:func:`_openvino`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal

from zoo.errors import ZooError
from zoo.settings import BY_NAME

if TYPE_CHECKING:
    import keras
    import numpy as np
    import tensorflow as tf

Name = Literal["tensorflow", "openvino"]
#: What ``--runtime`` accepts (declared with the run settings).
RUNTIMES: tuple[str, ...] = BY_NAME["runtime"].choices or ()
#: What ``--runtime-precision`` accepts.
PRECISIONS: tuple[str, ...] = BY_NAME["runtime_precision"].choices or ()
INSTALL = "pip install 'zoo[openvino]'"
#: ``auto`` converts to OpenVINO only for at least this many images. Converting and
#: compiling ResNet50 at 100x100 takes about 1.2 s on two cores; float32 saves about
#: 1.3 ms an image there (4 ms against TensorFlow's 5.3), so it pays from about 900
#: images, bfloat16 from about 400.
WORTH_CONVERTING = 1000
#: OpenVINO's name of each precision.
_OV_PRECISION = {"float32": "f32", "bfloat16": "bf16"}

#: A model as a function of a batch of inputs (NumPy in, NumPy out).
Runner = Callable[["np.ndarray"], "np.ndarray"]


@dataclass(frozen=True)
class RuntimeChoice:
    """Which runtime computes, in which precision, and why.

    Args:
        requested: What was asked: ``auto``, ``tensorflow`` or ``openvino``.
        name: What runs.
        precision: ``float32`` or ``bfloat16``, as it runs.
        reason: Why, in words, for the status line and the run record.
        version: OpenVINO's version when it runs.
    """

    requested: str
    name: Name
    precision: str
    reason: str
    version: str | None = None

    def describe(self) -> str:
        """``runtime: openvino 2026.4.1, float32 (auto: OpenVINO is installed...)``."""
        what = f"{self.name} {self.version}" if self.version else self.name
        return f"runtime: {what}, {self.precision} ({self.requested}: {self.reason})"

    def identity(self) -> dict[str, str]:
        """What features computed under this choice depend on (part of the cache key)."""
        return {"runtime": self.name, "precision": self.precision}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def installed() -> str | None:
    """OpenVINO's version, or ``None`` when it is not installed (found without importing it)."""
    if importlib.util.find_spec("openvino") is None:
        return None
    try:
        return metadata.version("openvino")
    except metadata.PackageNotFoundError:
        return "unknown version"


def gpu_visible() -> bool:
    """Whether TensorFlow sees a GPU (where ``auto`` keeps TensorFlow)."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def check(requested: str, precision: str = "float32") -> None:
    """Refuse what cannot run, before anything is loaded.

    Raises:
        ZooError: ``openvino`` asked for and not installed, or ``bfloat16`` asked for
            with ``tensorflow``.
    """
    if requested == "tensorflow" and precision != "float32":
        raise ZooError(
            f"--runtime-precision {precision} needs the OpenVINO runtime.",
            expected="--runtime openvino (or auto) with bfloat16",
            fix="drop --runtime tensorflow, or use --runtime-precision float32",
            got=precision,
        )
    if requested == "openvino" and installed() is None:
        raise ZooError(
            "--runtime openvino needs the openvino package, which is not installed.",
            expected="OpenVINO installed",
            fix=f"{INSTALL}, or --runtime auto to use it only when it is there",
            got=requested,
        )


def plan(
    requested: str, precision: str = "float32", *, gpu: bool = False, images: int | None = None
) -> RuntimeChoice:
    """The runtime to use, decided without converting anything.

    Args:
        requested: ``auto``, ``tensorflow`` or ``openvino``.
        precision: ``float32``, or ``bfloat16`` (OpenVINO only).
        gpu: Whether the model runs on a GPU (then ``auto`` keeps TensorFlow there).
        images: How many images the model will run on, when known: ``auto`` keeps
            TensorFlow below :data:`WORTH_CONVERTING`.

    Raises:
        ZooError: as :func:`check`.
    """
    check(requested, precision)
    version = installed()
    if requested == "tensorflow":
        return RuntimeChoice(requested, "tensorflow", precision, "asked for")
    if requested == "openvino":
        return RuntimeChoice(requested, "openvino", precision, "asked for", version)
    if version is None:
        return _tensorflow(requested, precision, f"OpenVINO is not installed ({INSTALL})")
    if gpu:
        return _tensorflow(requested, precision, "the run has a GPU, where TensorFlow runs")
    if images is not None and images < WORTH_CONVERTING:
        reason = (
            f"{images} images to run; below {WORTH_CONVERTING:,}, converting to OpenVINO "
            "costs more time than it saves"
        )
        return _tensorflow(requested, precision, reason)
    reason = "OpenVINO is installed and the run is on the CPU"
    return RuntimeChoice(requested, "openvino", precision, reason, version)


def _tensorflow(requested: str, precision: str, reason: str) -> RuntimeChoice:
    if precision != "float32":
        reason += "; bfloat16 needs OpenVINO, so float32"
    return RuntimeChoice(requested, "tensorflow", "float32", reason)


def compile_model(
    model: keras.Model, choice: RuntimeChoice, what: str = "the model"
) -> tuple[Runner | None, RuntimeChoice]:
    """``model`` ready to run as ``choice`` says: ``(runner, choice)``; ``what`` names
    it in the reason when it does not convert.

    For TensorFlow the runner is ``None`` (callers run the Keras model as they always
    did). For OpenVINO it converts the model; when conversion fails, the answer is
    TensorFlow with the reason, and so is the choice returned. The choice also tells
    when OpenVINO runs float32 although bfloat16 was asked for (a CPU without BF16).
    """
    if choice.name == "tensorflow":
        return None, choice
    try:
        runner = OpenVinoModel(model, choice.precision)
    except Exception as exc:  # the converter raises many types; any is a reason to fall back
        reason = f"{what} did not convert to OpenVINO ({_why(exc)})"
        return None, _tensorflow(choice.requested, choice.precision, reason)
    if runner.precision != choice.precision:
        reason = f"{choice.reason}; this CPU has no bfloat16 instructions, so float32"
        return runner, replace(choice, precision=runner.precision, reason=reason)
    return runner, choice


def _why(exc: Exception) -> str:
    """The converter's own summary (``No conversion rule found for operations:
    PyFunc``), else the error's first line that is not a source location."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    summary = [line.removeprefix("-- ") for line in lines if line.startswith("-- ")]
    plain = [line for line in lines if not line.startswith(("Check '", "To facilitate"))]
    text = "; ".join(summary) or (plain[0] if plain else type(exc).__name__)
    return text[:200]


class OpenVinoModel:
    """A Keras model converted to OpenVINO; called on a batch, it returns the first output.

    It is compiled for a static batch shape, the first batch's: a smaller batch (the
    last one) is padded to it rather than compiled again (a ResNet50 compiles in about
    0.1 s, as long as the padding of a 200-image split takes), a larger one is compiled
    for.
    """

    def __init__(self, model: keras.Model, precision: str = "float32") -> None:
        ov = _openvino()
        self._shape = tuple(model.inputs[0].shape[1:])
        traced = _traced(model)
        with _variables_indexed():
            self._model = ov.convert_model(traced)
        self._core = _core()
        native = "BF16" in self._core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        #: The precision it runs in: bfloat16 only where the CPU computes it natively.
        self.precision = precision if precision == "float32" or native else "float32"
        self._config = {
            "INFERENCE_PRECISION_HINT": _OV_PRECISION[self.precision],
            "PERFORMANCE_HINT": "LATENCY",
        }
        self._requests: dict[int, Any] = {}

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import numpy as np

        count = len(batch)
        size = min((n for n in self._requests if n >= count), default=count)
        if size > count:
            batch = np.concatenate([batch, np.zeros((size - count, *batch.shape[1:]), batch.dtype)])
        return self._request(size).infer({0: batch})[0][:count]

    def _request(self, size: int) -> Any:
        if size not in self._requests:
            shaped = self._model.clone()
            shaped.reshape([size, *self._shape])
            compiled = self._core.compile_model(shaped, "CPU", self._config)
            self._requests[size] = compiled.create_infer_request()
        return self._requests[size]


def _traced(model: keras.Model) -> Any:
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
def _core() -> Any:
    """The process's one OpenVINO ``Core``, kept until the process ends.

    OpenVINO's CPU plugin gives the thread that creates a ``Core`` its own signal stack
    and puts the previous one back when that ``Core`` is destroyed. Two ``Core`` objects
    destroyed in the order they were made leave the thread on a freed stack, and the
    next signal it takes (a Ctrl-C) kills the process with a segmentation fault instead
    of stopping the run cleanly. One ``Core``, never destroyed, cannot do that.
    """
    return _openvino().Core()


#: The converter's modules that send OpenVINO's usage telemetry, each through its ``tm``.
_TELEMETRY_USERS = (
    "openvino.tools.ovc.convert_impl",
    "openvino.tools.ovc.telemetry_utils",
    "openvino.tools.ovc.utils",
)


@functools.cache
def _openvino() -> Any:
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
def _variables_indexed() -> Iterator[None]:
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


def run_batches(runner: Runner, dataset: tf.data.Dataset) -> Iterator[tuple[Any, Any]]:
    """``(outputs, labels)`` as NumPy arrays, one batch of ``dataset`` at a time; read
    with tf.data's autotuning off (see the module's docstring: its iterator's end
    stalled 3.5 s beside OpenVINO)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    for images, labels in dataset.with_options(options):
        yield runner(images.numpy()), labels.numpy()
