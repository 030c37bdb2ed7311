"""Every kind of run exports to every runtime, and each file answers as Keras does.

The issue's bar: for a small CNN run, a frozen ResNet50 run, a KerasHub ViT run (a small
local preset) and a run whose head is a third-party plugin's own layer, every float
format's runtime gives Keras' probabilities within 1e-4 on up to 200 test images; an int8
LiteRT file of a model whose classes are learned loses at most 2 accuracy points
(tests/test_export_quantized.py). ``zoo export`` runs here in this process
(tests/test_export_runtimes.py runs it as users do, in its own).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

import zoo

FLOAT_FORMATS = ("litert", "onnx", "openvino")
#: 2,000 shapes: a test split of 200 images at 32x32.
MANY = ["dataset.num_images=2000", "dataset.min_size=24", "dataset.max_size=40"]


def train(output: Path, names: Sequence[str], *, image_size: int, sets: Sequence[str]) -> Path:
    registry = zoo.load_registry()
    settings = {"epochs": 1, "image_size": image_size, "batch_size": 32}
    resolved = zoo.resolve_run(registry, names, settings=settings, sets=sets)
    run_dir = zoo.run(resolved, output=output).run_dir
    assert run_dir is not None
    return run_dir


def exported(zoo_cli, run_dir: Path, fmt: str, *flags: str) -> tuple[dict, Path]:
    """``zoo export RUN --format FMT --json``'s check and folder, once it exited 0."""
    output = run_dir.parent / "-".join([run_dir.name, fmt, *flags])
    result = zoo_cli("export", str(run_dir), "--format", fmt, "--output", str(output), "--json",
                     *flags)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    check = result.json()["check"]
    saved = json.loads((output / "export.json").read_text())
    assert {key: saved[key] for key in check} == check  # what it printed is what it wrote
    return check, output


def small_cnn(tmp_path_factory, _presets) -> Path:
    return train(tmp_path_factory.mktemp("runs"), ["shapes", "small_cnn", "gap_sigmoid"],
                 image_size=32, sets=MANY)  # fmt: skip


def frozen_resnet50(tmp_path_factory, _presets) -> Path:
    """ResNet50 frozen as the tutorial freezes it; its ImageNet weights cannot be
    downloaded here, so random ones: the export must reproduce whatever it computes."""
    return train(
        tmp_path_factory.mktemp("runs"),
        ["shapes", "resnet50", "gap_sigmoid"],
        image_size=32,
        sets=[*MANY, "backbone.weights=none", "backbone.trainable=false"],
    )


def hub_vit(tmp_path_factory, presets) -> Path:
    pytest.importorskip("keras_hub")
    return train(
        tmp_path_factory.mktemp("runs"),
        ["shapes", "keras_hub", "gap_softmax"],
        image_size=presets.image_size,
        sets=[*MANY, f"backbone.preset={presets.vit}", "dataset.classes=circle,square,triangle"],
    )


def plugin_layer(tmp_path_factory, _presets) -> Path:
    pytest.importorskip("zoo_plugin_example", reason="pip install -e examples/zoo-plugin-example")
    return train(tmp_path_factory.mktemp("runs"), ["shapes", "separable_cnn", "attention_pool"],
                 image_size=32, sets=MANY)  # fmt: skip


@pytest.fixture(
    scope="module",
    params=[small_cnn, frozen_resnet50, hub_vit, plugin_layer],
    ids=["small_cnn", "frozen_resnet50", "hub_vit", "plugin_layer"],
)
def run_dir(request, tmp_path_factory) -> Path:
    presets = request.getfixturevalue("tiny_presets") if request.param is hub_vit else None
    return request.param(tmp_path_factory, presets)


@pytest.mark.parametrize("fmt", FLOAT_FORMATS)
def test_every_float_export_gives_keras_probabilities_within_1e_4(zoo_cli, run_dir, fmt):
    check, _ = exported(zoo_cli, run_dir, fmt)

    assert check["passed"], check["reason"]
    assert check["max_difference"] <= 1e-4
    assert check["agreement"] == 1.0
    assert check["images"] == min(200, _test_size(run_dir))


def _test_size(run_dir: Path) -> int:
    return json.loads((run_dir / "metrics.json").read_text())["dataset"]["sizes"]["test"]
