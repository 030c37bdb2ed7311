"""``zoo export RUN_DIR``: the trained model as .keras, SavedModel, LiteRT, ONNX or OpenVINO."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zoo import console
from zoo.commands._common import registry_from
from zoo.console import reports
from zoo.errors import ZooError

POSITION = 70
#: The options only the formats for other runtimes take, and their defaults.
RUNTIME_ONLY = {"quantize": None, "io_dtype": "float32", "calibration": None, "accept": False}


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    from zoo.results.export import FORMATS

    parser = sub.add_parser(
        "export",
        parents=[common],
        help="export a run's model: .keras, SavedModel, LiteRT, ONNX or OpenVINO",
        description="Export a run's trained model, preprocessing and class names included. "
        "The .keras file takes raw pixels (0..255) of any size and resizes them as zoo "
        "predict does; so does the SavedModel's 'serve' function, which takes uint8 "
        "images; zoo export says which packages load the file. litert, onnx and "
        "openvino write a folder: the model file, labels.txt, "
        "signature.json (input spec, classes) and export.json, the check of the written "
        "file by its own runtime against Keras on the run's test images (agreement, "
        "largest probability difference, accuracy, size, latency). A float export must "
        "match Keras within 1e-4, a quantized one lose at most --max-drop accuracy "
        "points; otherwise zoo export exits 1 (the folder stays) unless --accept.",
        epilog="examples: zoo export runs/RUN --format savedmodel --output served/1\n"
        "  zoo export runs/RUN --format litert --quantize int8 --output phone",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_ = parser.add_argument
    add_("run_dir", type=Path, metavar="RUN_DIR", help="a run directory")
    add_("--format", dest="fmt", choices=FORMATS, default="keras", help="default: keras")
    add_("--output", type=Path, required=True, metavar="PATH", help="where to write it (new)")
    add_(
        "--quantize",
        choices=("float16", "dynamic", "int8"),
        help="litert: float16, dynamic (int8 weights) or int8 (calibrated); openvino: "
        "float16 or int8 (NNCF); default: float32",
    )
    add_(
        "--io",
        dest="io_dtype",
        choices=("float32", "uint8"),
        default="float32",
        help="litert int8: the input and output type (default: float32)",
    )
    add_(
        "--calibration",
        type=Path,
        metavar="FOLDER",
        help="int8: calibrate on the images of FOLDER (default: the run's training images)",
    )
    add_(
        "--check-images",
        type=int,
        default=200,
        metavar="N",
        help="test images checked on (default: 200)",
    )
    add_(
        "--max-drop",
        type=float,
        default=2.0,
        metavar="POINTS",
        help="accuracy points a quantized export may lose (default: 2)",
    )
    add_("--accept", action="store_true", help="keep an export whose check failed, exit 0")
    add_("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from zoo.results.export import FOLDERS, check_output, export, loads_with

    check_output(args.fmt, args.output)
    runtime = args.fmt in FOLDERS and args.fmt != "savedmodel"
    if not runtime:
        _no_runtime_options(args)
        trained = _loaded(args, registry_from(args))
        path = export(trained, args.fmt, args.output)
        needs = loads_with(args.fmt, path)
        if args.json:
            console.print_json(
                {
                    "run_dir": str(args.run_dir),
                    "format": args.fmt,
                    "output": str(path),
                    "requires": needs,
                }
            )
        else:
            reports.exported(args.fmt, path, needs)
        return 0
    return _for_runtime(args)


def _for_runtime(args: argparse.Namespace) -> int:
    from zoo.results.exports.writing import Options, export_for_runtime, prepare

    if args.check_images < 1:
        raise ZooError(
            "--check-images must be 1 or more: every export is checked by its runtime.",
            expected="a whole number of test images, such as 200",
            fix="pass --check-images 200",
            got=args.check_images,
        )
    if not 0 <= args.max_drop <= 100:
        raise ZooError(
            "--max-drop is accuracy points, from 0 to 100.",
            expected="a number such as 2",
            fix="pass --max-drop 2",
            got=args.max_drop,
        )
    options = Options(
        quantize=args.quantize,
        io_dtype=args.io_dtype,
        calibration=args.calibration,
        check_images=args.check_images,
        max_drop=args.max_drop,
        accept=args.accept,
    )
    fmt = prepare(args.fmt, options)
    registry = registry_from(args)
    trained = _loaded(args, registry)
    done = export_for_runtime(trained, fmt, args.output, options, registry, console.status)
    check = done.check.to_dict() | {"calibration": done.calibration}
    if args.json:
        console.print_json(
            {
                "run_dir": str(args.run_dir),
                "format": args.fmt,
                "output": str(done.folder),
                "file": str(done.folder / fmt.file),
                "check": check,
            }
        )
    else:
        reports.export_check(done.folder, check, fmt.runtime)
    if done.check.passed or done.check.accepted:
        return 0
    console.warning(
        f"the export's check failed: {done.check.reason}. {done.folder} is kept; "
        "pass --accept to accept it, or export without --quantize"
    )
    return 1


def _no_runtime_options(args: argparse.Namespace) -> None:
    given = [name for name, default in RUNTIME_ONLY.items() if getattr(args, name) != default]
    if given:
        flag = "--" + given[0].replace("_dtype", "").replace("_", "-")
        raise ZooError(
            f"{flag} applies to the litert, onnx and openvino formats, not {args.fmt}.",
            expected="--format litert, onnx or openvino with it",
            fix=f"leave {flag} out, or pass --format litert",
            got=args.fmt,
        )


def _loaded(args: argparse.Namespace, registry: Any) -> Any:
    from zoo.results.predict import load_trained

    trained = load_trained(args.run_dir, registry)
    for warning in trained.warnings:
        console.warning(warning)
    return trained
