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
        epilog="examples: zoo predict runs/RUN photos/ cat.jpg --top-k 2\n"
        "  zoo predict phone/model.tflite photos/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_ = parser.add_argument
    add_(
        "run_dir",
        type=Path,
        metavar="RUN_DIR",
        help="a run directory, or an export for another runtime (the folder zoo export "
        "--format litert|onnx|openvino wrote, or its model file), run by that runtime",
    )
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
    from zoo.results.exports.opening import is_export, open_export
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
    if is_export(args.run_dir):
        _runtime_not_chosen(args)
        trained: Any = open_export(args.run_dir)
        runner, runtime = trained.runner, trained.describe()
        console.status(f"running {trained.path} with {trained.format.runtime}")
        batch_size = args.batch_size or 32
    else:
        trained = load_trained(args.run_dir, registry_from(args))
        for warning in trained.warnings:
            console.warning(warning)
        gpu, count = runners.gpu_visible(), len(files)
        choice = runners.plan(args.runtime, args.runtime_precision, gpu=gpu, images=count)
        runner, choice = runners.compile_model(trained.model, choice)
        console.status(choice.describe())
        runtime, batch_size = choice.to_json(), args.batch_size or trained.batch_size
    top_k = min(args.top_k or 3, len(trained.class_names))
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
                "runtime": runtime,
                "predictions": result.predicted,
                "errors": errors,
            }
        )
    else:
        # Two classes: the predicted one and its probability say it all.
        shown = top_k if len(trained.class_names) > 2 else 1
        reports.predictions(result.predicted, errors, shown)
    return 1 if errors else 0


def _runtime_not_chosen(args: argparse.Namespace) -> None:
    """An export runs on its own runtime: refuse a --runtime or its precision."""
    for name in ("runtime", "runtime_precision"):
        setting = BY_NAME[name]
        if getattr(args, name) != setting.default:
            raise ZooError(
                f"{setting.flag} chooses how a run directory's model runs; an export runs on "
                "the runtime of its format.",
                expected="a run directory with " + setting.flag,
                fix=f"leave {setting.flag} out, or pass the run directory instead",
                got=str(args.run_dir),
            )
