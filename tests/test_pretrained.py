"""The ``shapes_cnn`` backbone and the pretrained weights zoo ships for it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

import zoo
from zoo.downloads.weights import sha256


@pytest.fixture
def pretrained():
    """The built-in plugin module, as zoo loaded it."""
    zoo.load_registry()
    return sys.modules["zoo.builtins.pretrained"]


def test_the_shipped_weights_have_the_recorded_hash_and_are_small(pretrained):
    assert pretrained.WEIGHTS_FILE.is_file()
    assert sha256(pretrained.WEIGHTS_FILE) == pretrained.WEIGHTS_SHA256
    assert pretrained.WEIGHTS_FILE.stat().st_size < 1_000_000


def test_the_docstring_gives_the_command_that_rebuilds_them(pretrained):
    assert pretrained.REBUILD in pretrained.__doc__
    assert (
        Path(pretrained.__file__)
        .parent.parent.joinpath("tools", "pretrain_demo_backbone.py")
        .is_file()
    )


def test_damaged_weights_are_refused_with_a_clear_error(
    zoo_cli, pretrained, isolated: Path, monkeypatch
):
    damaged = isolated / "shapes_cnn.weights.h5"
    shutil.copyfile(pretrained.WEIGHTS_FILE, damaged)
    with damaged.open("r+b") as f:
        f.seek(-100, 2)
        f.write(b"\0" * 10)
    monkeypatch.setattr(pretrained, "WEIGHTS_FILE", damaged)

    result = zoo_cli("run", "--recipe", "demo_pretrained", "--dry-run")

    assert result.exit_code == 2
    assert "has the wrong SHA-256" in result.stderr
    assert "tools/pretrain_demo_backbone.py" in result.stderr
    assert "Traceback" not in result.stderr


def test_pretrained_and_frozen_by_default_random_and_trainable_on_request(zoo_cli):
    frozen = zoo_cli("run", "--recipe", "demo_pretrained", "--dry-run", "--json")
    scratch = zoo_cli("run", "--recipe", "demo_scratch", "--dry-run", "--json")

    assert frozen.exit_code == scratch.exit_code == 0, frozen.stderr + scratch.stderr
    # Only the head's Dense(1) trains on top of the frozen backbone: 64 weights + 1 bias.
    assert frozen.json()["parameters"] == {"total": 28705, "trainable": 65, "non_trainable": 28640}
    assert scratch.json()["parameters"]["trainable"] == 28705


def test_weights_load_from_the_shipped_file_or_a_path(pretrained, isolated: Path):
    import numpy as np

    shape = (64, 64, 3)
    shipped = pretrained.build(shape, {"weights": "shapes4", "trainable": False})
    random = pretrained.build(shape, {"weights": "none", "trainable": True})
    random.model.save_weights(isolated / "mine.weights.h5")
    mine = pretrained.build(
        shape, {"weights": str(isolated / "mine.weights.h5"), "trainable": False}
    )

    assert shipped.weights_file == str(pretrained.WEIGHTS_FILE)
    assert random.weights_file is None and random.model.trainable
    assert not shipped.model.trainable
    first = [m.model.get_layer("conv1").get_weights()[0] for m in (shipped, random, mine)]
    assert not np.allclose(first[0], first[1])
    np.testing.assert_array_equal(first[1], first[2])


@pytest.mark.parametrize("weights", ["imagenet", "missing.weights.h5"])
def test_other_weights_values_are_user_errors(pretrained, weights):
    with pytest.raises(zoo.ZooError, match="weights must be 'shapes4', 'none' or"):
        pretrained.build((64, 64, 3), {"weights": weights, "trainable": False})


def linear_probe_accuracy(features, labels) -> float:
    """Held-out accuracy of a least-squares linear classifier: first half fits, second scores."""
    import numpy as np

    half = len(labels) // 2
    scaled = (features - features[:half].mean(0)) / (features[:half].std(0) + 1e-6)
    inputs = np.c_[scaled, np.ones(len(labels))]
    w = np.linalg.lstsq(inputs[:half], labels[:half] * 2.0 - 1.0, rcond=None)[0]
    return float(((inputs[half:] @ w > 0) == labels[half:]).mean())


def test_the_pretrained_features_tell_apart_shapes_they_never_saw(pretrained):
    """The demo's claim in its cheapest form: ring vs diamond, with the backbone frozen."""
    import keras
    import numpy as np
    import tensorflow as tf

    from zoo.model.layers import preprocessing_layer

    shapes = sys.modules["zoo.builtins.shapes"]
    rng = np.random.default_rng(1)
    labels = np.arange(400) % 2
    images = np.stack(
        [
            tf.image.resize(shapes.draw(rng, ("ring", "diamond")[label], 64, 160, 8.0), (64, 64))
            for label in labels
        ]
    )
    accuracy = {}
    for weights in ("shapes4", "none"):
        keras.utils.set_random_seed(0)
        built = pretrained.build((64, 64, 3), {"weights": weights, "trainable": False})
        features = keras.Sequential(
            [
                keras.Input((64, 64, 3)),
                preprocessing_layer(built.preprocessing),
                built.model,
                keras.layers.GlobalAveragePooling2D(),
            ]
        )
        accuracy[weights] = linear_probe_accuracy(features.predict(images, verbose=0), labels)

    assert accuracy["shapes4"] >= 0.95
    assert accuracy["shapes4"] - accuracy["none"] >= 0.15


def test_the_pretraining_script_writes_weights_the_backbone_loads(pretrained, isolated, capsys):
    import importlib.util

    script = Path(pretrained.__file__).parent.parent / "tools" / "pretrain_demo_backbone.py"
    spec = importlib.util.spec_from_file_location("pretrain_demo_backbone", script)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    output = isolated / "mine.weights.h5"

    tiny = ["--num-images", "40", "--epochs", "1", "--image-size", "32"]
    code = tool.main(["--output", str(output), "--runs", str(isolated / "runs"), *tiny])

    assert code == 0
    printed = capsys.readouterr().out
    assert f"sha256: {sha256(output)}" in printed
    assert "not the file zoo ships" in printed  # one epoch on 40 images: other weights
    built = pretrained.build((32, 32, 3), {"weights": str(output), "trainable": False})
    assert built.weights_file == str(output)
