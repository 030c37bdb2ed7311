"""Warnings for setups that cannot learn, on the console and in metrics.json."""

from __future__ import annotations

import pytest
from helpers import TINY_RUN, bn_cnn_plugin, write

from zoo.train import checks

BN_PLUGIN = bn_cnn_plugin(trainable=True)


def run(zoo_cli, backbone: str, *args: str) -> tuple[dict, str]:
    result = zoo_cli("run", "shapes", backbone, "gap_sigmoid", *TINY_RUN, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return result.json(), result.stderr


def codes(metrics: dict) -> list[str]:
    return [warning["code"] for warning in metrics.get("warnings", [])]


def test_a_frozen_backbone_with_random_weights_is_warned_about(zoo_cli):
    metrics, stderr = run(zoo_cli, "small_cnn", "--set", "backbone.trainable=false")

    [warning] = metrics["warnings"]
    assert warning["code"] == "frozen_random_backbone"
    assert "backbone 'small_cnn' is frozen and its weights are random" in stderr
    assert "Fix: train the backbone too (--set backbone.trainable=true)" in stderr


@pytest.mark.parametrize(
    ("backbone", "args"),
    [
        ("shapes_cnn", ()),  # frozen, pretrained
        ("small_cnn", ()),  # random, but it trains
        ("shapes_cnn", ("--set", "backbone.weights=none", "--set", "backbone.trainable=true")),
    ],
)
def test_backbones_that_can_learn_are_not_warned_about(zoo_cli, backbone, args):
    metrics, stderr = run(zoo_cli, backbone, "--image-size", "24", *args)

    assert codes(metrics) == []
    # The data summary may warn about the tiny splits; nothing warns about the setup.
    assert "frozen and its weights are random" not in stderr
    assert "BatchNormalization" not in stderr


def test_a_keras_application_without_weights_and_frozen_is_warned_about(zoo_cli):
    metrics, stderr = run(zoo_cli, "mobilenet_v2", "--set", "backbone.weights=none")

    assert codes(metrics) == ["frozen_random_backbone"]
    assert "load trained weights (--set backbone.weights=imagenet)" in stderr


def test_batch_norm_trained_for_too_few_steps_is_warned_about_with_the_steps_it_needs(
    zoo_cli, isolated
):
    write(isolated / "bn_plugin.py", BN_PLUGIN)
    write(isolated / "registry.toml", '[plugins]\nload = ["bn_plugin.py"]\n')

    metrics, stderr = run(zoo_cli, "bn_cnn")
    frozen, _ = run(zoo_cli, "bn_cnn", "--set", "backbone.trainable=false")

    [warning] = metrics["warnings"]
    assert warning["code"] == "batch_norm_few_steps"
    steps = -(-metrics["dataset"]["sizes"]["train"] // 8)
    needed = checks.settling_steps(0.99)  # the slower of the two layers
    assert f"2 BatchNormalization layers for only {steps} steps" in warning["message"]
    assert f"need about {needed} steps to settle" in stderr
    assert f"train at least {needed} steps" in warning["fix"]
    assert codes(frozen) == []  # frozen, it runs in inference mode


def test_moving_statistics_settle_when_their_start_weighs_under_five_percent():
    for momentum in (0.9, 0.99, 0.999):
        needed = checks.settling_steps(momentum)

        assert momentum**needed < checks.SETTLED <= momentum ** (needed - 1)
