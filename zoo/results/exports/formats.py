"""The formats ``zoo export`` writes for other runtimes, and one way to open each.

Each format's module writes the file and opens it with that format's own runtime; this
module says what differs between them (the file's name, the extra that installs the
runtime, whether the input size is fixed, the quantizations) and dispatches to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from zoo.errors import ZooError
from zoo.results.exports import litert, onnx, openvino

if TYPE_CHECKING:
    import keras
    import numpy as np


class Runner(Protocol):
    """An exported file opened by its runtime: a batch of pixels in, probabilities out.

    ``input_dtype`` is ``"float32"`` or ``"uint8"``; ``image_size`` the side the file
    takes (``None``: any); ``outputs`` the number of probability columns.
    """

    @property
    def input_dtype(self) -> str: ...

    @property
    def image_size(self) -> int | None: ...

    @property
    def outputs(self) -> int: ...

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Format:
    """One export format: its file in the export folder and its runtime."""

    name: str
    file: str
    extra: str
    runtime: str
    any_size: bool
    quantizations: tuple[str, ...]
    #: The modules its runtime needs (checked before anything is written).
    needs: tuple[str, ...]

    def files(self, folder: Path) -> list[Path]:
        """The model's files in ``folder`` (OpenVINO keeps its weights beside the .xml)."""
        model = folder / self.file
        return [model, model.with_suffix(".bin")] if self.name == "openvino" else [model]

    def write(
        self,
        model: keras.Model,
        folder: Path,
        *,
        quantize: str | None,
        calibration: Callable[[], Iterable[np.ndarray]] | None,
        io_dtype: str,
        metadata: Mapping[str, str],
    ) -> None:
        """Write ``model`` as ``folder / self.file``."""
        path = folder / self.file
        if self.name == "litert":
            litert.write_litert(
                model, path, quantize=quantize, calibration=calibration, io_dtype=io_dtype
            )
        elif self.name == "onnx":
            onnx.write_onnx(model, path, metadata=metadata)
        else:
            openvino.write_openvino(
                model, path, quantize=quantize, calibration=calibration, metadata=metadata
            )

    def open(self, path: Path) -> Runner:
        """Open the exported file at ``path`` with this format's runtime."""
        if self.name == "litert":
            return litert.open_litert(path)
        if self.name == "onnx":
            return onnx.open_onnx(path)
        return openvino.open_openvino(path)


FORMATS = {
    "litert": Format(
        name="litert",
        file="model.tflite",
        extra="litert",
        runtime="LiteRT",
        any_size=False,
        quantizations=litert.QUANTIZATIONS,
        needs=("ai_edge_litert.interpreter",),
    ),
    "onnx": Format(
        name="onnx",
        file="model.onnx",
        extra="onnx",
        runtime="ONNX Runtime",
        any_size=True,
        quantizations=onnx.QUANTIZATIONS,
        needs=("tf2onnx", "onnx", "onnxruntime"),
    ),
    "openvino": Format(
        name="openvino",
        file="model.xml",
        extra="openvino",
        runtime="OpenVINO",
        any_size=True,
        quantizations=openvino.QUANTIZATIONS,
        needs=("openvino",),
    ),
}
#: What each file suffix is, for ``zoo predict FILE``.
BY_SUFFIX = {Path(f.file).suffix: f for f in FORMATS.values()}


def check_options(fmt: Format, quantize: str | None, io_dtype: str) -> None:
    """Refuse a quantization the format lacks, or uint8 input without int8.

    Raises:
        ZooError: saying which, and what the format offers.
    """
    if quantize is not None and quantize not in fmt.quantizations:
        offered = ", ".join(fmt.quantizations) or "none (it exports float32 only)"
        raise ZooError(
            f"{fmt.name} exports have no '{quantize}' quantization.",
            expected=f"--quantize for {fmt.name}: {offered}",
            fix="leave --quantize out for float32, or pick another format (litert: "
            "float16, dynamic, int8; openvino: float16, int8)",
            got=quantize,
        )
    if io_dtype != "float32" and quantize != "int8":
        raise ZooError(
            f"--io {io_dtype} needs an int8 model: only a fully quantized file takes uint8 pixels.",
            expected="--io uint8 together with --format litert --quantize int8",
            fix="add --quantize int8, or leave --io out",
            got=io_dtype,
        )
    if io_dtype != "float32" and fmt.name != "litert":
        raise ZooError(
            f"{fmt.name} exports take float32 pixels; --io {io_dtype} is for LiteRT.",
            expected="--io uint8 with --format litert --quantize int8",
            fix="leave --io out",
            got=io_dtype,
        )
