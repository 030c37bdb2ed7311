"""Where a frozen model runs: TensorFlow, or OpenVINO on the CPU.

A frozen backbone only predicts, so its features need not come from TensorFlow:
OpenVINO's CPU runtime computes the same function faster (BENCHMARKS.md has by how
much). ``--runtime`` chooses, for feature extraction and ``zoo predict``:

- ``tensorflow``: the Keras model itself.
- ``openvino``: the Keras model, traced by zoo, converted in memory by
  ``openvino.convert_model`` (:mod:`zoo.runtime.conversion`; the preprocessing and the
  backbone, KerasHub's included), compiled for the batch shape (static shapes run
  faster than a dynamic batch), one synchronous request with the ``LATENCY`` hint (the
  ``THROUGHPUT`` hint pays only with several requests in flight). Its batches come from
  tf.data with autotuning off, as all of zoo's
  (:func:`zoo.runtime.loader.without_autotuning`): beside OpenVINO, the stall at a
  pass's end that autotuning can cause was frequent.
- ``auto`` (the default): ``openvino`` when it is installed, nothing runs on a GPU
  and there are images enough to repay the conversion (:data:`WORTH_CONVERTING`),
  else ``tensorflow``.

A model that fails to convert runs on TensorFlow instead, and the choice says why.
float32 is the default (features within 1e-3 relative of TensorFlow's; tested);
bfloat16 (``--runtime-precision bfloat16``) is faster again on CPUs with BF16
instructions, with features about 1% off; OpenVINO runs float32 where the CPU has none,
and the choice says so.

OpenVINO is an extra (``pip install 'zoo[openvino]'``): it only helps CPUs, and zoo
works the same without it. :mod:`zoo.runtime.conversion` loads it with its usage
telemetry off and converts models.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal

from zoo.config.settings import BY_NAME
from zoo.errors import ZooError
from zoo.runtime import conversion

if TYPE_CHECKING:
    import keras
    import numpy as np
    import tensorflow as tf

Name = Literal["tensorflow", "openvino"]
#: What ``--runtime-precision`` accepts.
PRECISIONS: tuple[str, ...] = BY_NAME["runtime_precision"].choices or ()
INSTALL = "pip install 'zoo[openvino]'"
#: ``auto`` converts to OpenVINO only for at least this many images: below it, converting
#: and compiling cost more than OpenVINO saves (worked out in docs/architecture.md).
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
    # Where OpenVINO would not be chosen anyway, its absence is not the reason (nor news).
    if gpu:
        return _tensorflow(requested, precision, "the run has a GPU, where TensorFlow runs")
    if images is not None and images < WORTH_CONVERTING:
        reason = (
            f"{images} images to run; below {WORTH_CONVERTING:,}, converting to OpenVINO "
            "costs more time than it saves"
        )
        return _tensorflow(requested, precision, reason)
    if version is None:
        return _tensorflow(requested, precision, f"OpenVINO is not installed ({INSTALL})")
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
    last one) is padded to it rather than compiled again (compiling costs more than
    the padded examples), a larger one is compiled for.
    """

    def __init__(self, model: keras.Model, precision: str = "float32") -> None:
        self._shape = tuple(model.inputs[0].shape[1:])
        if None in self._shape:  # compiled per batch for a static shape: it needs one
            raise ValueError(f"the input's shape {self._shape} is not fixed")
        self._model = conversion.convert(model)
        self._core = conversion.core()
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


def run_batches(runner: Runner, dataset: tf.data.Dataset) -> Iterator[tuple[Any, Any]]:
    """``(outputs, labels)`` as NumPy arrays, one batch of ``dataset`` at a time; read
    with tf.data's autotuning off (:func:`zoo.runtime.loader.without_autotuning`)."""
    from zoo.runtime.loader import without_autotuning

    for images, labels in without_autotuning(dataset):
        yield runner(images.numpy()), labels.numpy()
