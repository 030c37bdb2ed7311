"""Opening an export for ``zoo predict``: the folder or its model file, and its signature.

What an export says about itself is read from ``signature.json`` beside the model file,
or, for ONNX and OpenVINO without it, from the copy inside the file. Either is checked
against what the runtime reports (input size and type, number of outputs), so a
signature from another export is an error, not wrong class names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.results.exports.formats import BY_SUFFIX, Format, Runner
from zoo.results.exports.signature import FIX, SIGNATURE, Signature

#: The largest signature.json read, far above any zoo writes.
MAX_SIGNATURE_BYTES = 1 << 20


@dataclass
class OpenedExport:
    """An export opened by its runtime, with what ``zoo predict`` needs of it."""

    path: Path
    format: Format
    signature: Signature
    runner: Runner

    @property
    def class_names(self) -> list[str]:
        return self.signature.class_names

    @property
    def image_size(self) -> int:
        return self.signature.image_size

    def describe(self) -> dict[str, Any]:
        """What runs it, as ``zoo predict --json`` reports a runtime."""
        return {
            "requested": "export",
            "name": self.format.name,
            "precision": self.signature.quantization or "float32",
            "reason": f"an export runs on {self.format.runtime}",
            "version": None,
        }


def is_export(path: Path) -> bool:
    """Whether ``path`` is an export: a model file zoo writes, or a folder holding one."""
    if path.is_dir():
        names = [SIGNATURE, *(f.file for f in BY_SUFFIX.values())]
        return any((path / name).is_file() for name in names)
    return path.suffix in BY_SUFFIX


def open_export(path: Path) -> OpenedExport:
    """Open the export at ``path`` (its folder or its model file) with its runtime.

    Raises:
        ZooError: no model file, a damaged or mismatched signature, or a file its
            runtime cannot open.
    """
    model = _model_file(path)
    fmt = BY_SUFFIX[model.suffix]
    if not model.is_file():
        raise ZooError(
            f"{model} is missing or not a file.",
            expected=f"the {fmt.file} zoo export wrote in {model.parent}",
            fix=FIX,
            got=str(model),
        )
    runner = fmt.open(model)
    signature = _signature(model, fmt, runner)
    _check(signature, runner, model)
    return OpenedExport(model, fmt, signature, runner)


def _model_file(path: Path) -> Path:
    if not path.is_dir():
        return path
    found = [path / f.file for f in BY_SUFFIX.values() if (path / f.file).is_file()]
    if len(found) == 1:
        return found[0]
    names = ", ".join(f.file for f in BY_SUFFIX.values())
    raise ZooError(
        f"{path} holds {'several model files' if found else 'no model file'} of an export.",
        expected=f"one of {names} in the folder zoo export wrote",
        fix=f"pass the model file itself, or {FIX}",
        got=[str(p) for p in found] or str(path),
    )


def _signature(model: Path, fmt: Format, runner: Runner) -> Signature:
    beside = model.parent / SIGNATURE
    if beside.is_file():
        return Signature.from_json(_read(beside), str(beside))
    inside = getattr(runner, "metadata", None)
    if fmt.name == "openvino":
        from zoo.results.exports.openvino import read_metadata

        inside = read_metadata(model)
    if inside and "zoo" in inside:
        return Signature.from_json(inside["zoo"], f"the signature inside {model}")
    raise ZooError(
        f"{beside} is missing: zoo cannot tell the classes of {model.name}.",
        expected=f"the {SIGNATURE} zoo export writes beside {model.name}",
        fix=f"copy {SIGNATURE} from the export folder beside it, or {FIX}",
        got=str(model),
    )


def _check(signature: Signature, runner: Runner, model: Path) -> None:
    """The signature describes this file: same outputs, input size and type."""
    found = (runner.outputs, runner.image_size, runner.input_dtype)
    declared = (signature.columns, signature.input_size, signature.input_dtype)
    if found != declared:
        raise ZooError(
            f"the signature beside {model} does not describe it: the file has "
            f"{found[0]} outputs, input size {found[1]} and type {found[2]}; the "
            f"signature says {declared[0]}, {declared[1]} and {declared[2]}.",
            expected=f"the {SIGNATURE} written with this {model.name}",
            fix=FIX,
            got=str(model.parent / SIGNATURE),
        )


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SIGNATURE_BYTES + 1)
    except OSError as exc:
        raise ZooError(
            f"cannot read {path}: {exc.strerror or exc}.",
            expected=f"the {SIGNATURE} zoo export writes",
            fix=FIX,
            got=str(path),
        ) from None
    if len(data) > MAX_SIGNATURE_BYTES:
        raise ZooError(
            f"{path} is over {MAX_SIGNATURE_BYTES:,} bytes; zoo writes a few hundred.",
            expected=f"the {SIGNATURE} zoo export writes",
            fix=FIX,
            got=str(path),
        )
    return data
