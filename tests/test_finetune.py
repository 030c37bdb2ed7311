"""Fine-tuning that explains itself: layer listings, what was counted, errors that name
the backbone."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import TINY_RUN, run_zoo, write

RUN = ["run", "shapes", "shapes_cnn", "gap_sigmoid", *TINY_RUN, "--image-size", "24"]


def test_a_missing_layer_is_named_with_the_component_not_the_keras_model(zoo_cli):
    result = zoo_cli(*RUN, "--fine-tune-layers", "conv5", "--fine-tune-epochs", "1")

    assert result.exit_code == 2
    assert "--fine-tune-layers conv5: backbone 'shapes_cnn' has no layer named 'conv5'" in (
        result.stderr
    )
    assert "small_cnn" not in result.stderr  # the Keras model's name
    assert "expected: a number of top layers" in result.stderr
    assert "fix: did you mean 'conv3'?" in result.stderr
    assert "`zoo info shapes_cnn --layers` lists them" in result.stderr
    assert "train epoch" not in result.stderr  # checked before any training


def test_too_many_layers_is_an_error_that_says_how_many_there_are(zoo_cli):
    result = zoo_cli(*RUN, "--fine-tune-layers", "60", "--fine-tune-epochs", "1")

    assert result.exit_code == 2
    assert "--fine-tune-layers 60: backbone 'shapes_cnn' has 6 layers." in result.stderr


def test_fine_tune_layers_without_epochs_is_an_error_not_silently_ignored(zoo_cli):
    result = zoo_cli(*RUN, "--fine-tune-layers", "2")

    assert result.exit_code == 2
    assert "--fine-tune-layers needs --fine-tune-epochs" in result.stderr
    assert "--fine-tune-epochs 3" in result.stderr


def layers_json(*args: str, cwd: Path) -> dict:
    result = run_zoo("info", *args, "--layers", "--json", cwd=cwd)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_info_layers_lists_names_weights_and_the_number_that_starts_at_each(isolated: Path):
    listing = layers_json("shapes_cnn", cwd=isolated)

    layers = listing["layers"]
    assert [row["name"] for row in layers] == ["conv1", "pool1", "conv2", "pool2", "conv3", "pool3"]
    assert [row["top"] for row in layers] == [6, 5, 4, 3, 2, 1]
    assert [row["holds_weights"] for row in layers] == [True, False] * 3
    assert layers[0]["params"] == 3 * 3 * 3 * 32 + 32
    assert listing["params"] == {"weights": "shapes4", "trainable": False}
    assert listing["note"] is None


#: A backbone whose default weights are a file; a test writes it in one process and
#: damages it before ``zoo info --layers`` reads it in another.
FILE_WEIGHTS_PLUGIN = """
import zoo

def build(image_shape, params):
    import keras
    model = keras.Sequential(
        [keras.Input(image_shape), keras.layers.Conv2D(4, 3, name="conv"),
         keras.layers.BatchNormalization(name="norm"), keras.layers.ReLU(name="relu")],
        name="keras_name",
    )
    if params["weights"] != "none":
        try:
            model.load_weights(params["weights"])
        except Exception as exc:
            raise zoo.ZooError(f"cannot read {params['weights']}", got=str(exc)) from None
    pretrained = params["weights"] != "none"
    return zoo.BuiltBackbone(model=model, preprocessing="unit", pretrained=pretrained)

@zoo.hookimpl
def register_backbones(register):
    register(zoo.Backbone(
        name="filed",
        description="Weights from a file",
        params=[zoo.Param("weights", str, "filed.weights.h5")],
        build=build,
        min_image_size=3,
    ))
"""

SAVE_WEIGHTS = """
import sys
sys.path.insert(0, ".")
import filed_plugin
filed_plugin.build((100, 100, 3), {"weights": "none"}).model.save_weights("filed.weights.h5")
"""


def test_info_layers_falls_back_to_no_weights_and_says_why(isolated: Path):
    import subprocess
    import sys

    write(isolated / "filed_plugin.py", FILE_WEIGHTS_PLUGIN)
    write(isolated / "registry.toml", '[plugins]\nload = ["filed_plugin.py"]\n')
    write(isolated / "save.py", SAVE_WEIGHTS)
    subprocess.run([sys.executable, "save.py"], cwd=isolated, check=True, capture_output=True)
    loaded = layers_json("filed", cwd=isolated)
    weights = isolated / "filed.weights.h5"
    weights.write_bytes(weights.read_bytes()[:200])  # a torn download, say

    damaged = layers_json("filed", cwd=isolated)
    table = run_zoo("info", "filed", "--layers", cwd=isolated)

    assert loaded["note"] is None and loaded["params"]["weights"] == "filed.weights.h5"
    assert damaged["params"]["weights"] == "none"
    assert "built with weights=none" in damaged["note"]
    assert "cannot read filed.weights.h5" in damaged["note"]
    assert [row["name"] for row in damaged["layers"]] == ["conv", "norm", "relu"]
    assert [row["batch_norm"] for row in damaged["layers"]] == [False, True, False]
    assert table.exit_code == 0
    assert "stays frozen" in table.stdout and "warning: built with weights=none" in table.stderr


def test_info_layers_of_something_that_is_not_a_backbone_is_a_clear_error(zoo_cli):
    result = zoo_cli("info", "gap_sigmoid", "--layers")

    assert result.exit_code == 2
    assert "there is no backbone named 'gap_sigmoid'" in result.stderr
