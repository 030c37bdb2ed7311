"""Pretrain the ``shapes_cnn`` backbone on the source task and save its weights.

The source task is ``shapes`` with four classes (circle, square, triangle, cross),
distinct from the demo's target task (ring vs diamond). It is an ordinary zoo run of
``shapes_cnn`` from random weights with a softmax head; the script then saves the
backbone's weights and prints their SHA-256, to paste into ``plugins/pretrained.py``.

Reproduce the shipped file (about 2-3 minutes on 2 CPU cores)::

    python tools/pretrain_demo_backbone.py --output plugins/weights/shapes_cnn.weights.h5

Seeds are fixed and TensorFlow's ops run deterministically on the CPU, so a re-run
writes a bit-identical file, and the script says whether its hash is the shipped one.
That holds for the same versions of zoo's training loop, TensorFlow and Keras on the
same kind of CPU (the shipped file: zoo 0.1.0, TensorFlow 2.21.0, Keras 3.15.1, x86-64);
elsewhere the numbers may differ in the last bits, and the hash with them. Either way
the file is the backbone's weights: pass it as ``--set backbone.weights=PATH``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

SOURCE_CLASSES = "circle,square,triangle,cross"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--output", type=Path, required=True, help="the .weights.h5 file to write")
    add("--num-images", type=int, default=8000, help="source images, split 80/10/10")
    add("--epochs", type=int, default=10, help="passes over the source training split")
    add("--image-size", type=int, default=64, help="images are resized to SIZE x SIZE")
    add("--seed", type=int, default=0, help="seeds the images, initialisation and shuffling")
    add("--runs", type=Path, help="where the source run goes (default: a new temporary folder)")
    return parser.parse_args(argv)


def pretrain(args: argparse.Namespace) -> Path:
    """Train on the source task; return the run directory."""
    import zoo
    from zoo.runtime import loader

    loader.load()
    import tensorflow as tf

    # Same seed, same ops, same order: the weights file is the same on every run.
    tf.config.experimental.enable_op_determinism()
    resolved = zoo.resolve_run(
        zoo.load_registry(zoo.LoadOptions(builtins_only=True)),
        ["shapes", "shapes_cnn", "gap_softmax"],
        settings={"epochs": args.epochs, "image_size": args.image_size, "seed": args.seed},
        sets=[
            f"dataset.classes={SOURCE_CLASSES}",
            f"dataset.num_images={args.num_images}",
            f"dataset.seed={args.seed}",
            "backbone.weights=none",
            "backbone.trainable=true",
        ],
    )
    output = args.runs or Path(tempfile.mkdtemp(prefix="zoo-pretrain-"))
    result = zoo.run(resolved, output=output, command=[sys.executable, *sys.argv])
    assert result.run_dir is not None
    return result.run_dir


def save_backbone(run_dir: Path, output: Path) -> None:
    """Save the backbone part of the trained model as a Keras weights file."""
    import keras

    import zoo

    zoo.load_registry(zoo.LoadOptions(builtins_only=True))
    model = keras.models.load_model(run_dir / "model.keras")
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Sequential))
    output.parent.mkdir(parents=True, exist_ok=True)
    backbone.save_weights(output)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.output.name.endswith(".weights.h5"):
        sys.exit("--output must end in .weights.h5 (Keras' weights format)")
    run_dir = pretrain(args)
    save_backbone(run_dir, args.output)
    from zoo.downloads.weights import sha256

    found = sha256(args.output)
    shipped = sys.modules["zoo.builtins.pretrained"].WEIGHTS_SHA256
    print(f"source run: {run_dir}")
    print(f"weights: {args.output} ({args.output.stat().st_size:,} bytes)")
    print(f"sha256: {found}")
    if found == shipped:
        print("the same file as the one zoo ships (plugins/pretrained.py: WEIGHTS_SHA256)")
    else:
        print(f"not the file zoo ships (sha256 {shipped}); to ship this one, set")
        print("WEIGHTS_SHA256 in plugins/pretrained.py to the sha256 above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
