"""``zoo export RUN_DIR``: the trained model as a .keras file or a TensorFlow SavedModel."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zoo import console
from zoo.commands._common import registry_from
from zoo.console import reports

POSITION = 70


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    from zoo.results.export import FORMATS

    parser = sub.add_parser(
        "export",
        parents=[common],
        help="export a run's model as .keras or a TensorFlow SavedModel",
        description="Export a run's trained model, preprocessing and class names included. "
        "The .keras file takes raw pixels (0..255) of the training size; the SavedModel's "
        "'serve' function takes uint8 images of any size and resizes them as zoo predict "
        "does.",
        epilog="example: zoo export runs/RUN --format savedmodel --output served/1",
    )
    add_ = parser.add_argument
    add_("run_dir", type=Path, metavar="RUN_DIR", help="a run directory")
    add_("--format", dest="fmt", choices=FORMATS, default="keras", help="default: keras")
    add_("--output", type=Path, required=True, metavar="PATH", help="where to write it (new)")
    add_("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from zoo.results.export import check_output, export
    from zoo.results.predict import load_trained

    check_output(args.fmt, args.output)
    trained = load_trained(args.run_dir, registry_from(args))
    for warning in trained.warnings:
        console.warning(warning)
    path = export(trained, args.fmt, args.output)
    if args.json:
        console.print_json({"run_dir": str(args.run_dir), "format": args.fmt, "output": str(path)})
    else:
        reports.exported(args.fmt, path)
    return 0
