"""``zoo export --format litert|onnx|openvino``: the folder, written whole and checked.

The folder holds the model file, ``labels.txt``, ``signature.json``
(:mod:`~zoo.results.exports.signature`) and ``export.json``, the check of the written
file by its own runtime (:mod:`~zoo.results.exports.check`). It is written beside its
final path and renamed into place once checked, so a folder that exists is whole. A
check that fails still leaves the folder (nothing is lost; ``export.json`` says it
failed), and ``zoo export`` exits 1 unless ``--accept`` was given.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.results.exports import check as checking
from zoo.results.exports import samples
from zoo.results.exports.extras import require
from zoo.results.exports.formats import FORMATS, Format, check_options
from zoo.results.exports.signature import LABELS, SIGNATURE, Signature, labels_text

if TYPE_CHECKING:
    from zoo.components import Splits
    from zoo.registry import Registry
    from zoo.results.predict import Trained

REPORT = "export.json"
#: Images int8 calibration sees by default.
CALIBRATION_IMAGES = 200


@dataclass
class Options:
    """How to export: ``zoo export``'s flags."""

    quantize: str | None = None
    io_dtype: str = "float32"
    calibration: Path | None = None
    check_images: int = 200
    max_drop: float = checking.MAX_DROP
    accept: bool = False


@dataclass
class Exported:
    """What was written where, and its check."""

    folder: Path
    format: Format
    signature: Signature
    check: checking.Check
    calibration: str | None


def prepare(fmt_name: str, options: Options) -> Format:
    """The format, once its options fit it and its packages are installed.

    Raises:
        ZooError: an option the format lacks, or a package its extra installs is missing.
    """
    from zoo.runtime import loader

    fmt = FORMATS[fmt_name]
    check_options(fmt, options.quantize, options.io_dtype)
    loader.load()  # before the converters import TensorFlow without silencing its start-up
    for module in fmt.needs:
        require(module, fmt.extra, f"a {fmt.name} export")
    if options.quantize == "int8" and fmt.name == "openvino":
        require("nncf", "openvino-int8", "int8 quantization of an OpenVINO export")
    return fmt


def export_for_runtime(
    trained: Trained,
    fmt: Format,
    output: Path,
    options: Options,
    registry: Registry,
    status: Callable[[str], None] = lambda _: None,
) -> Exported:
    """Write ``trained``'s model in ``fmt`` as folder ``output``, checked by its runtime.

    Raises:
        ZooError: the run's data cannot be rebuilt, the model does not convert, or the
            written file does not open.
        DiskFull: the disk filled up.
    """
    from zoo.results.export import FIX, any_size, staged
    from zoo.storage import disk_full
    from zoo.storage.disk_full import variable_bytes

    size = trained.image_size
    status(f"rebuilding the run's data to check the {fmt.name} export on")
    splits = samples.rebuilt_splits(registry, trained)
    test = samples.from_split(splits, "test", size, options.check_images)
    calibration = _calibration(splits, size, options) if options.quantize == "int8" else None
    model = any_size(trained) if fmt.any_size else trained.model
    signature = _signature(trained, fmt, options)
    metadata = {"zoo": signature.to_json()}
    needed = variable_bytes(model)
    with disk_full.writing("the export", output, needed, FIX), staged(output, True) as folder:
        status(f"writing {fmt.file}" + (f" ({options.quantize})" if options.quantize else ""))
        fmt.write(
            model,
            folder,
            quantize=options.quantize,
            calibration=calibration.uint8 if calibration else None,
            io_dtype=options.io_dtype,
            metadata=metadata,
        )
        (folder / SIGNATURE).write_text(signature.to_json(), encoding="utf-8")
        (folder / LABELS).write_text(labels_text(trained.class_names), encoding="utf-8")
        status(f"checking {fmt.file} with {fmt.runtime} on {test.source}")
        result = checking.check(
            trained.model,
            fmt.open(folder / fmt.file),
            test,
            fmt=fmt.name,
            quantization=options.quantize,
            files=fmt.files(folder),
            max_drop=options.max_drop,
        )
        result.accepted = options.accept and not result.passed
        source = calibration.source if calibration else None
        report = {**result.to_dict(), "calibration": source, "signature": signature.to_dict()}
        (folder / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return Exported(output, fmt, signature, result, source)


def _calibration(splits: Splits, size: int, options: Options) -> samples.Sample:
    if options.calibration is not None:
        return samples.from_folder(options.calibration, size, CALIBRATION_IMAGES)
    return samples.from_split(splits, "train", size, CALIBRATION_IMAGES)


def _signature(trained: Trained, fmt: Format, options: Options) -> Signature:
    from zoo._version import __version__

    return Signature(
        format=fmt.name,
        file=fmt.file,
        class_names=list(trained.class_names),
        output=trained.manifest.output,
        image_size=trained.image_size,
        input_size=None if fmt.any_size else trained.image_size,
        input_dtype=options.io_dtype,
        quantization=options.quantize,
        run=trained.run_dir.name,
        zoo_version=__version__,
    )
