"""The in-process halves of benchmarks 2, 3 and 6, each run in a fresh process.

``python -m bench.workers KIND DATA_DIR --image-size N --json OUT`` builds what zoo
builds for ``zoo run image_folder resnet50 gap_sigmoid`` (through zoo's public API),
times one pass, and writes ``{"images": n, "seconds": s, "first": [n0, s0]}`` to OUT
(``first``: the first batch's images and the seconds until it was done, which include
tracing the model):

- ``extract``: zoo's feature extraction (``zoo.train.features.cache.extract_to``) over a split,
  reading and decoding the JPEGs, as ``zoo run`` extracts them: the pooled features
  ``gap_sigmoid`` trains on, computed by ``--runtime`` in ``--precision`` (OpenVINO's
  conversion is timed apart, in ``convert``, and counted in the cold rate); after the
  timing, the features of the validation split's first 64 images (a split in a fixed
  order) go to ``--features-out``, for comparing runtimes.
- ``predict``: the same features model's ``predict`` over the same images, already
  decoded and resized in memory (the bare backbone's speed, on TensorFlow).
- ``pipeline``: the image_folder input pipeline alone, decoding and resizing a split.
- ``probe``: the devices TensorFlow sees (``{"gpus": [...], "tensorflow": version}``).
- ``sizes``: the shape of one image's cached features at each ``--sizes`` side, as a
  map and pooled (``{"100": {"map": [...], "pooled": [...]}, ...}``).

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
    """The resolved run and its splits, as ``zoo run`` resolves and loads them; seeded
    as ``zoo run`` seeds, so every worker builds the same random ResNet50."""
    import keras

    import zoo
    from zoo.model.assemble import build_splits

    keras.utils.set_random_seed(0)

    registry = zoo.load_registry()
    resolved = zoo.resolve_run(
        registry,
        ("image_folder", "resnet50", "gap_sigmoid"),
        settings={"image_size": image_size, "batch_size": batch_size},
        sets=[f"dataset.path={data_dir}", "backbone.weights=none"],
    )
    return resolved, build_splits(resolved)


def _batches(resolved: Any, splits: Any, split: str) -> Any:
    from zoo.data import pipeline

    config = resolved.config
    return pipeline.batches(
        getattr(splits, split),
        image_size=config.image_size,
        batch_size=config.batch_size,
        size=splits.sizes[split],
    )


def _features_model(resolved: Any, splits: Any) -> Any:
    """What ``zoo run`` extracts with: preprocessing, backbone and the head's pooling."""
    import zoo

    return zoo.build_model(resolved, splits.num_classes).pooled.features


def extract(resolved: Any, splits: Any, split: str, options: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from zoo.runtime import runners
    from zoo.train.distribute import place
    from zoo.train.features.cache import extract_to
    from zoo.train.loop import predict_batches

    model, placement = _features_model(resolved, splits), place("auto")
    batches = _batches(resolved, splits, split)
    done: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as folder:
        start = time.perf_counter()
        choice = runners.plan(options.runtime, options.precision)
        runner, choice = runners.compile_model(model, choice)
        converted = time.perf_counter() - start
        if runner is None:
            predicted = predict_batches(model, placement, batches)
        else:
            predicted = runners.run_batches(runner, batches)
        extract_to(Path(folder), predicted, lambda _: done.append(time.perf_counter()))
        seconds = time.perf_counter() - start
    if options.features_out is not None:  # of a split in a fixed order, after the timing
        images = next(iter(_batches(resolved, splits, "validation").unbatch().batch(64)))[0]
        found = model(images, training=False) if runner is None else runner(images.numpy())
        np.save(options.features_out, np.asarray(found))
    first = min(resolved.config.batch_size, splits.sizes[split])
    return {
        "images": splits.sizes[split],
        "seconds": seconds,
        "first": [first, done[0] - start],
        "convert": converted,
        "runtime": choice.to_json(),
    }


def predict(resolved: Any, splits: Any, split: str, options: argparse.Namespace) -> dict[str, Any]:
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


def pipeline(resolved: Any, splits: Any, split: str, options: argparse.Namespace) -> dict[str, Any]:
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


def sizes(image_sizes: list[int]) -> dict[str, Any]:
    import zoo

    shapes = {}
    for size in image_sizes:
        resolved = zoo.resolve_run(
            zoo.load_registry(),
            ("shapes", "resnet50", "gap_sigmoid"),
            settings={"image_size": size},
            sets=["backbone.weights=none"],
        )
        model = zoo.build_model(resolved, 2)
        shapes[str(size)] = {
            "map": list(model.features.output.shape[1:]),
            "pooled": list(model.pooled.features.output.shape[1:]),
        }
    return shapes


KINDS: dict[str, Callable[[Any, Any, str, argparse.Namespace], dict[str, Any]]] = {
    "extract": extract,
    "predict": predict,
    "pipeline": pipeline,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workers")
    parser.add_argument("kind", choices=[*KINDS, "probe", "sizes"])
    parser.add_argument("data_dir", type=Path, nargs="?")
    parser.add_argument("--image-size", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--runtime", default="tensorflow")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--features-out", type=Path)
    parser.add_argument("--sizes", type=lambda text: [int(n) for n in text.split(",")])
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.kind == "probe":
        result = probe()
    elif args.kind == "sizes":
        result = sizes(args.sizes)
    else:
        resolved, splits = _build(args.data_dir, args.image_size, args.batch_size)
        result = KINDS[args.kind](resolved, splits, args.split, args)
    args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
