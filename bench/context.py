"""What every benchmark shares: settings, the work folder, generated data, child processes."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.images import generate
from bench.measure import BenchError, Measured, run_process

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


@dataclass(frozen=True)
class Settings:
    """The sizes of one invocation (``--quick`` or ``--full``, then any overrides).

    Args:
        images: Images in benchmark 1's generated folder (split 80/10/10).
        epochs: Epochs of benchmark 1.
        repeats: Runs of each side of benchmark 1.
        small_repeats: Runs of each side of benchmarks 2-4 (each takes seconds).
        scale_images: Benchmark 5's image counts, each trained ``scale_images_epochs``.
        scale_epochs: Benchmark 5's epoch counts, each on ``scale_epochs_images`` images.
        extract_split: The split benchmark 2 extracts (several batches, so a steady rate).
        variants: Benchmark 1's other zoo sides (:data:`bench.transfer.VARIANTS`), run
            when OpenVINO is installed.
        tune_backbones: The frozen backbones benchmark 9's study searches.
        tune_trials: Benchmark 9's trials per backbone.
        tune_epochs: The most epochs of each of benchmark 9's trials.
        tune_image_size: Benchmark 9's image size (``None``: ``image_size``); larger than
            benchmark 1's in ``--full``, where extraction costs what it does at the sizes
            these backbones are used at.
    """

    mode: str
    images: int
    epochs: int
    repeats: int
    small_repeats: int
    scale_images: tuple[int, ...]
    scale_images_epochs: int
    scale_epochs: tuple[int, ...]
    scale_epochs_images: int
    extract_split: str = "validation"
    variants: tuple[str, ...] = ("--runtime tensorflow", "--runtime-precision bfloat16")
    tune_backbones: tuple[str, ...] = ("mobilenet_v2", "mobilenet_v3_large")
    tune_trials: int = 2
    tune_epochs: int = 2
    tune_image_size: int | None = None
    image_size: int = 100
    batch_size: int = 32
    seed: int = 0

    @property
    def tune_size(self) -> int:
        return self.tune_image_size or self.image_size

    def folder_sizes(self, selected: list[int]) -> set[int]:
        """The image counts the selected benchmarks generate folders of."""
        sizes = {self.images} if {1, 2, 3, 6, 9} & set(selected) else set()
        if 5 in selected:
            sizes |= {*self.scale_images, self.scale_epochs_images}
        return sizes

    def check(self, selected: list[int]) -> None:
        """Every split folder needs an image of each class: 20 images at the least.

        Raises:
            BenchError: a folder too small for that.
        """
        too_small = sorted(n for n in self.folder_sizes(selected) if n < MIN_IMAGES)
        if too_small:
            raise BenchError(
                f"folders of {', '.join(map(str, too_small))} images are too small: the "
                "validation and test folders (10% each, two classes) need an image of each "
                f"class. Use at least {MIN_IMAGES} images."
            )


#: The smallest generated folder whose 10% validation and test splits hold both classes.
MIN_IMAGES = 20

QUICK = Settings(
    mode="quick",
    images=300,
    epochs=2,
    repeats=1,
    small_repeats=1,
    scale_images=(200, 300),
    scale_images_epochs=2,
    scale_epochs=(1, 2),
    scale_epochs_images=300,
    extract_split="train",
    variants=("--runtime tensorflow",),  # enough to see a variant run; bfloat16 is alike
)
FULL = Settings(
    mode="full",
    images=2000,
    epochs=7,
    repeats=5,
    small_repeats=3,
    scale_images=(500, 1000, 2000),
    scale_images_epochs=1,
    scale_epochs=(1, 3, 7),
    scale_epochs_images=500,
    # 1,600 images: TensorFlow's retrace for the last, shorter batch (about a second for
    # ResNet50, paid once a run) weighs on a 200-image split's rate, not on a run's.
    extract_split="train",
    tune_backbones=("mobilenet_v2", "efficientnet_b0", "resnet50", "densenet121",
                    "mobilenet_v3_large"),
    tune_trials=20,
    tune_epochs=3,
    tune_image_size=160,
)  # fmt: skip


@dataclass
class Context:
    """One invocation's state: where things go, and results later benchmarks reuse."""

    settings: Settings
    workdir: Path
    gpus: list[str] | None = None  # None: not probed
    memo: dict[str, Any] = field(default_factory=dict)
    _count: int = 0
    _datasets: dict[int, Path] = field(default_factory=dict)

    def dataset(self, images: int) -> Path:
        """A generated image folder of ``images`` JPEGs (made once per size)."""
        if images not in self._datasets:
            folder = self.workdir / f"data-{images}"
            self._datasets[images] = generate(folder, images, seed=self.settings.seed)
        return self._datasets[images]

    def fresh_dir(self, name: str) -> Path:
        self._count += 1
        folder = self.workdir / f"{self._count:03d}-{name}"
        folder.mkdir(parents=True)
        return folder

    def env(self, folder: Path, device: str) -> dict[str, str]:
        """The child's environment: a cold zoo cache; ``cpu`` hides any GPU."""
        env = dict(os.environ)
        env["ZOO_CACHE_DIR"] = str(folder / "zoo-cache")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = "-1"
        return env

    def run(self, name: str, argv: list[str], device: str = "cpu") -> tuple[Measured, Path]:
        """Run ``argv`` in a fresh folder (its cwd); return the measurement and the folder."""
        folder = self.fresh_dir(name)
        measured = run_process(
            argv, log=folder / "output.log", env=self.env(folder, device), cwd=folder
        )
        return measured, folder

    def worker(
        self, kind: str, images: int, device: str, split: str, extra: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Run ``python -m bench.workers KIND`` on the folder of ``images`` images, with
        ``extra`` arguments; the result has ``folder``, where the worker ran."""
        s = self.settings
        folder_args = [] if kind in ("probe", "sizes") else [str(self.dataset(images))]
        argv = [sys.executable, "-m", "bench.workers", kind, *folder_args]
        argv += ["--image-size", str(s.image_size), "--batch-size", str(s.batch_size)]
        argv += ["--split", split, "--json", "result.json", *extra]
        _, folder = self.run(kind, argv, device)
        return {**json.loads((folder / "result.json").read_text()), "folder": str(folder)}


def zoo_command() -> list[str]:
    """The installed ``zoo`` script next to this Python, else ``python -m zoo``."""
    script = Path(sys.executable).parent / "zoo"
    if script.is_file():
        return [str(script)]
    found = shutil.which("zoo")
    return [found] if found else [sys.executable, "-m", "zoo"]


def temporary_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="zoo-bench-"))
