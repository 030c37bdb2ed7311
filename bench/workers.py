"""The in-process halves of benchmarks 2, 3 and 6, each run in a fresh process.

``python -m bench.workers KIND DATA_DIR --image-size N --json OUT`` builds what zoo
builds for ``zoo run image_folder resnet50 gap_sigmoid`` (through zoo's public API),
times one pass, and writes ``{"images": n, "seconds": s, "first": [n0, s0]}`` to OUT
(``first``: the first batch's images and the seconds until it was done, which include
tracing the model):

- ``extract``: zoo's feature extraction (``zoo.train.features.extract_to``) over a split,
  reading and decoding the JPEGs, as ``zoo run`` extracts them.
- ``predict``: the same features model's ``predict`` over the same images, already
  decoded and resized in memory (the bare backbone's speed).
- ``pipeline``: the image_folder input pipeline alone, decoding and resizing a split.
- ``probe``: the devices TensorFlow sees (``{"gpus": [...], "tensorflow": version}``).

Each pass is timed once, cold: tracing the model is part of what a run pays, and both
sides of a comparison pay it. The rest of the pass, after the first batch, is the
steady rate.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _build(data_dir: Path, image_size: int, batch_size: int) -> tuple[Any, Any]:
    """The resolved run and its splits, as ``zoo run`` resolves and loads them."""
    import zoo
    from zoo.model import build_splits

    registry = zoo.load_registry()
    resolved = zoo.resolve_run(
        registry,
        ("image_folder", "resnet50", "gap_sigmoid"),
        settings={"image_size": image_size, "batch_size": batch_size},
        sets=[f"dataset.path={data_dir}", "backbone.weights=none"],
    )
    return resolved, build_splits(resolved)


def _batches(resolved: Any, splits: Any, split: str) -> Any:
    from zoo import data

    config = resolved.config
    return data.batches(
        getattr(splits, split),
        image_size=config.image_size,
        batch_size=config.batch_size,
        size=splits.sizes[split],
    )


def _features_model(resolved: Any, splits: Any) -> Any:
    import zoo

    return zoo.build_model(resolved, splits.num_classes).features


def extract(resolved: Any, splits: Any, split: str) -> dict[str, Any]:
    from zoo.train.distribute import place
    from zoo.train.features import extract_to

    model, placement = _features_model(resolved, splits), place("auto")
    batches = _batches(resolved, splits, split)
    done: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as folder:
        start = time.perf_counter()
        extract_to(
            Path(folder), model, placement, batches, lambda _: done.append(time.perf_counter())
        )
        seconds = time.perf_counter() - start
    first = min(resolved.config.batch_size, splits.sizes[split])
    return {"images": splits.sizes[split], "seconds": seconds, "first": [first, done[0] - start]}


def predict(resolved: Any, splits: Any, split: str) -> dict[str, Any]:
    import numpy as np

    model = _features_model(resolved, splits)
    images = np.concatenate([x.numpy() for x, _ in _batches(resolved, splits, split)])
    batch = resolved.config.batch_size
    start = time.perf_counter()
    model.predict(images[:batch], batch_size=batch, verbose=0)
    first = time.perf_counter() - start
    if len(images) > batch:
        model.predict(images[batch:], batch_size=batch, verbose=0)
    seconds = time.perf_counter() - start
    return {"images": len(images), "seconds": seconds, "first": [min(batch, len(images)), first]}


def pipeline(resolved: Any, splits: Any, split: str) -> dict[str, Any]:
    sizes: list[int] = []
    start = time.perf_counter()
    for images, _ in _batches(resolved, splits, split):
        sizes.append(int(images.shape[0]))
        if len(sizes) == 1:
            first = time.perf_counter() - start
    seconds = time.perf_counter() - start
    return {"images": sum(sizes), "seconds": seconds, "first": [sizes[0], first]}


def probe() -> dict[str, Any]:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    return {"gpus": names, "tensorflow": tf.__version__}


KINDS: dict[str, Callable[[Any, Any, str], dict[str, Any]]] = {
    "extract": extract,
    "predict": predict,
    "pipeline": pipeline,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workers")
    parser.add_argument("kind", choices=[*KINDS, "probe"])
    parser.add_argument("data_dir", type=Path, nargs="?")
    parser.add_argument("--image-size", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.kind == "probe":
        result = probe()
    else:
        resolved, splits = _build(args.data_dir, args.image_size, args.batch_size)
        result = KINDS[args.kind](resolved, splits, args.split)
    args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
