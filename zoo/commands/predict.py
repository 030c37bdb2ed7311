"""``zoo predict RUN_DIR PATH ...``: classify image files with a trained run's model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zoo import console
from zoo.commands._common import TOP_K, checked, help_text, registry_from
from zoo.config.settings import BY_NAME
from zoo.console import reports
from zoo.errors import ZooError

POSITION = 60


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "predict",
        parents=[common],
        help="predict the classes of image files with a trained run",
        description="Predict each image's class with a run's model, preprocessed exactly "
        "as in training. Exit code 1 when some files could not be read.",
        epilog="example: zoo predict runs/RUN photos/ cat.jpg --top-k 2",
    )
    add_ = parser.add_argument
    add_("run_dir", type=Path, metavar="RUN_DIR", help="a run directory")
    add_("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders")
    add_("--top-k", type=int, help="classes shown per image (default: 3, or all if fewer)")
    add_("--batch-size", type=int, help="images per batch (default: the run's)")
    helps = {
        "runtime": "what runs the model: auto (OpenVINO when it is installed, there is no "
        "GPU and there are files enough to repay converting, else TensorFlow), tensorflow "
        "or openvino",
        "runtime_precision": "OpenVINO's precision: float32, or bfloat16 (faster on CPUs "
        "with BF16 instructions; probabilities about 1% off)",
    }
    for name, text in helps.items():  # the choices and defaults zoo run declares
        setting = BY_NAME[name]
        add_(setting.flag, choices=setting.choices, default=setting.default, help=help_text(text))
    add_("--json", action="store_true", help="print the predictions as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from zoo.results.predict import find_images, load_trained, predict_files
    from zoo.runtime import runners

    checked("--top-k", args.top_k, TOP_K)
    checked("--batch-size", args.batch_size)
    files, missing = find_images(args.paths)
    if not files and not missing:
        raise ZooError(
            "found no image files to predict.",
            expected="image files, or folders holding images (JPEG, PNG, WebP, TIFF...)",
            fix="check the paths given",
            got=[str(p) for p in args.paths],
        )
    runners.check(args.runtime, args.runtime_precision)
    trained = load_trained(args.run_dir, registry_from(args))
    for warning in trained.warnings:
        console.warning(warning)
    gpu, count = runners.gpu_visible(), len(files)
    choice = runners.plan(args.runtime, args.runtime_precision, gpu=gpu, images=count)
    runner, choice = runners.compile_model(trained.model, choice)
    console.status(choice.describe())
    top_k = min(args.top_k or 3, len(trained.class_names))
    batch_size = args.batch_size or trained.batch_size
    steps = -(-len(files) // batch_size)
    noun = "file" if len(files) == 1 else "files"
    with console.TaskProgress(f"predicting {len(files)} {noun}", steps) as progress:
        result = predict_files(
            trained,
            files,
            top_k=top_k,
            batch_size=batch_size,
            on_batch=progress.advance,
            runner=runner,
        )
    errors = missing + result.errors
    if args.json:
        console.print_json(
            {
                "run_dir": str(args.run_dir),
                "class_names": trained.class_names,
                "runtime": choice.to_json(),
                "predictions": result.predicted,
                "errors": errors,
            }
        )
    else:
        # Two classes: the predicted one and its probability say it all.
        shown = top_k if len(trained.class_names) > 2 else 1
        reports.predictions(result.predicted, errors, shown)
    return 1 if errors else 0
