"""What a deployer needs beside an exported model: its classes and its input spec.

Every export folder holds the model file, ``labels.txt`` (the class names, one per
line, in the order of the probabilities) and ``signature.json``::

    {"zoo_export": 1, "format": "litert", "file": "model.tflite",
     "input": {"dtype": "float32", "shape": [null, 160, 160, 3], "layout": "NHWC",
               "channels": "RGB", "range": [0, 255], "resize": "..."},
     "output": {"dtype": "float32", "kind": "softmax", "columns": 3, "meaning": "..."},
     "class_names": ["cat", "dog", "fox"], "image_size": 160, "quantization": null,
     "run": "20261207-...", "zoo_version": "0.1.0"}

ONNX and OpenVINO also carry the same JSON inside the file (``metadata_props`` and
``rt_info``, key ``zoo``). A signature read from disk is untrusted: :meth:`Signature.from_json`
checks every field and never takes a path from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NoReturn

from zoo.errors import ZooError

VERSION = 1
SIGNATURE = "signature.json"
LABELS = "labels.txt"
#: The largest image side a signature may declare, far above any backbone's.
MAX_SIZE = 8192
FIX = "export the run again: zoo export RUN --format FORMAT --output DIR"

_MEANING = {
    "sigmoid": "one column: the probability of the second class (class_names[1]); the "
    "first class wins below 0.5",
    "softmax": "one probability per class, in the order of class_names",
}


@dataclass(frozen=True)
class Signature:
    """An export's format, classes and input spec (``signature.json``).

    ``input_size`` is the side the file takes (``None``: any size, resized inside);
    ``image_size`` is the side the model was trained at.
    """

    format: str
    file: str
    class_names: list[str]
    output: str
    image_size: int
    input_size: int | None
    input_dtype: str
    quantization: str | None
    run: str
    zoo_version: str

    @property
    def columns(self) -> int:
        return 1 if self.output == "sigmoid" else len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        size = self.input_size
        resize = (
            f"inside the model: bilinear to {self.image_size}x{self.image_size}, no antialiasing"
            if size is None
            else f"before the model: bilinear to {size}x{size}, no antialiasing (as zoo predict)"
        )
        output = {"dtype": self.input_dtype, "kind": self.output, "columns": self.columns}
        output["meaning"] = _MEANING[self.output] + (
            "; uint8: multiply by the output tensor's scale after subtracting its zero point"
            if self.input_dtype == "uint8"
            else ""
        )
        return {
            "zoo_export": VERSION,
            "format": self.format,
            "file": self.file,
            "input": {
                "dtype": self.input_dtype,
                "shape": [None, size, size, 3],
                "layout": "NHWC",
                "channels": "RGB",
                "range": [0, 255],
                "resize": resize,
            },
            "output": output,
            "class_names": list(self.class_names),
            "image_size": self.image_size,
            "quantization": self.quantization,
            "run": self.run,
            "zoo_version": self.zoo_version,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, source: str) -> Signature:
        """Read a signature ``source`` holds, checking each field.

        Raises:
            ZooError: not JSON, or a field missing or not as zoo writes it (named).
        """
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ZooError(
                f"{source} is not JSON: {exc}.",
                expected="the signature.json zoo export writes",
                fix=FIX,
            ) from None
        return _Reader(source).signature(data)


class _Reader:
    """Checks a parsed signature field by field; each complaint names the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def signature(self, data: Any) -> Signature:
        from zoo.results.exports.formats import FORMATS

        if not isinstance(data, dict) or data.get("zoo_export") != VERSION:
            self.fail("zoo_export", f'a JSON object with "zoo_export": {VERSION}', data)
        fmt = self.choice(data, "format", tuple(FORMATS))
        inputs, outputs = self.mapping(data, "input"), self.mapping(data, "output")
        kind = self.choice(outputs, "kind", tuple(_MEANING), "output.kind")
        names = data.get("class_names")
        if not (
            isinstance(names, list)
            and len(names) >= 2
            and all(isinstance(n, str) and n for n in names)
            and len(set(names)) == len(names)
        ):
            self.fail("class_names", "two or more distinct class names", names)
        if kind == "sigmoid" and len(names) != 2:
            self.fail("class_names", "two class names for a sigmoid output", names)
        shape = inputs.get("shape")
        if not (isinstance(shape, list) and len(shape) == 4 and shape[3] == 3):
            self.fail("input.shape", "[batch, height, width, 3]", shape)
        quantization = data.get("quantization")
        if quantization is not None and quantization not in FORMATS[fmt].quantizations:
            self.fail("quantization", f"null or one of {FORMATS[fmt].quantizations}", quantization)
        return Signature(
            format=fmt,
            file=FORMATS[fmt].file,  # never a path from the file: the format's own name
            class_names=list(names),
            output=kind,
            image_size=self.size(data.get("image_size"), "image_size"),
            input_size=None if shape[1] is None else self.size(shape[1], "input.shape"),
            input_dtype=self.choice(inputs, "dtype", ("float32", "uint8"), "input.dtype"),
            quantization=quantization,
            run=str(data.get("run", "")),
            zoo_version=str(data.get("zoo_version", "")),
        )

    def mapping(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key)
        if not isinstance(value, dict):
            self.fail(key, "a JSON object", value)
        return value

    def choice(
        self, data: dict[str, Any], key: str, choices: tuple[str, ...], name: str = ""
    ) -> str:
        value = data.get(key)
        if value not in choices:
            self.fail(name or key, f"one of {', '.join(choices)}", value)
        return str(value)

    def size(self, value: Any, name: str) -> int:
        if not (isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SIZE):
            self.fail(name, f"a whole number of pixels from 1 to {MAX_SIZE}", value)
        return int(value)

    def fail(self, field: str, expected: str, got: Any) -> NoReturn:
        raise ZooError(
            f"{self.source}: field '{field}' is not as zoo export writes it.",
            expected=expected,
            fix=FIX,
            got=got if len(repr(got)) < 200 else f"{repr(got)[:200]}...",
        )


def labels_text(class_names: list[str]) -> str:
    """``labels.txt``: one class name per line, in the order of the probabilities."""
    return "".join(f"{name}\n" for name in class_names)
