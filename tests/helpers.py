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
