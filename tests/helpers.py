"""Helpers the tests share: running the CLI, writing files, small plugin sources.

Fixtures live in ``conftest.py``; plain functions and constants live here and are
imported as ``from helpers import ...`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Settings that make a training run take a few seconds on two CPU cores.
TINY_RUN = [
    "--epochs", "1", "--image-size", "32", "--batch-size", "8",
    "--set", "dataset.num_images=40",
    "--set", "dataset.min_size=24",
    "--set", "dataset.max_size=40",
]  # fmt: skip


def write(path: Path, text: str) -> Path:
    """Write dedented ``text`` to ``path``, creating folders; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@dataclass
class Result:
    """What a zoo command did: its exit code and its two output streams."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


def history_numbers(metrics: dict) -> list[float]:
    """Every metric of every epoch of a run's ``metrics.json``, in order."""
    return [row[key] for row in metrics["history"] for key in sorted(row) if key != "stage"]


def zoo_executable() -> str:
    """The installed ``zoo`` console script."""
    found = shutil.which("zoo", path=str(Path(sys.executable).parent)) or shutil.which("zoo")
    assert found, "the zoo console script is not installed (pip install -e .)"
    return found


def run_zoo(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
    """Run the real ``zoo`` entry point in a subprocess."""
    proc = subprocess.run(
        [zoo_executable(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


TINY_BACKBONE_PLUGIN = """
import zoo

def build(image_shape, params):
    import keras
    model = keras.Sequential(
        [keras.Input(image_shape), keras.layers.Conv2D(params["filters"], 3)], name="tiny"
    )
    return zoo.BuiltBackbone(model=model, preprocessing="unit")

@zoo.hookimpl
def register_backbones(register):
    register(zoo.Backbone(
        name="{name}",
        description="A one-layer test backbone",
        params=[zoo.Param("filters", int, 4, "conv filters")],
        build=build,
        min_image_size=3,
    ))
"""


def tiny_backbone_plugin(name: str = "tiny") -> str:
    """Source of a plugin module registering a one-layer backbone called ``name``."""
    return TINY_BACKBONE_PLUGIN.replace("{name}", name)


# --- Tiny training problems for in-process tests of the loop, trainer and callbacks.


def learnable(count: int = 48, seed: int = 0) -> tuple[Any, Any]:
    """``count`` points in 4-D labelled by the sign of their first coordinate."""
    import numpy as np

    x = np.random.default_rng(seed).normal(size=(count, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def batched(x: Any, y: Any, size: int = 8) -> Any:
    """``(x, y)`` as a batched ``tf.data.Dataset``, in order."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(size)


def tiny_classifier(units: int = 1, seed: int = 0) -> Any:
    """A one-layer Keras classifier of 4-D points (sigmoid for one unit, else softmax)."""
    import keras

    keras.utils.set_random_seed(seed)
    activation = "sigmoid" if units == 1 else "softmax"
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation=activation)])


def one_device() -> Any:
    """The default strategy on this machine's CPU, as ``zoo.train.distribute`` places it."""
    from zoo.train.distribute import place

    return place("default")


def stage_plan(model: Any, epochs: int = 2, learning_rate: float = 0.05, **fields: Any) -> Any:
    """A head stage training ``model`` on :func:`learnable` data with Adam."""
    import keras

    from zoo.train.events import StagePlan

    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(model.trainable_variables)
    x, y = learnable()
    plan = {
        "stage": "head",
        "model": model,
        "optimizer": optimizer,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "train_batches": lambda epoch: batched(x, y),
        "val_batches": lambda: batched(x, y),
        "steps": 6,
        "checkpointed": model,
    }
    return StagePlan(**{**plan, **fields})


# --- Labelled image folders for image_folder, zoo evaluate and zoo predict.

#: Mean colours of generated classes; "lime" looks exactly like "green", so a model
#: cannot tell those two apart and always makes mistakes.
COLOURS = {
    "red": (200, 60, 50),
    "green": (60, 180, 70),
    "lime": (60, 180, 70),
    "blue": (50, 80, 200),
}
#: Formats written in turn: what TensorFlow decodes and what only Pillow does.
FORMATS = ("jpg", "png", "webp", "tiff")


def colour_folder(root: Path, counts: dict[str, int], size: int = 16, seed: int = 0) -> Path:
    """``root/<class>/<i>.<format>``: noisy images of each class's colour; return ``root``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.normal(COLOURS[name], 40, (size, size, 3))
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            image.save(folder / f"{i}.{FORMATS[i % len(FORMATS)]}")
    return root
