"""``zoo info`` with ``--set``, on recipes, and usage errors that show the command's usage."""

from __future__ import annotations

import json

import pytest
from helpers import run_zoo, write


def layer_names(result) -> list[str]:
    assert result.exit_code == 0, result.stderr
    return [row["name"] for row in json.loads(result.stdout)["layers"]]


def test_info_layers_takes_set_and_lists_the_backbone_it_builds(isolated):
    default = run_zoo("info", "small_cnn", "--layers", "--json")
    narrower = run_zoo("info", "small_cnn", "--layers", "--json", "--set", "backbone.filters=8,8")

    assert len(layer_names(narrower)) < len(layer_names(default))
    assert json.loads(narrower.stdout)["params"]["filters"] == "8,8"


@pytest.mark.parametrize(
    ("assignment", "complaint"),
    [
        ("backbone.filterz=8", "has no parameter 'filterz' (from --set)"),
        ("backbone.trainable=maybe", "bad value for parameter 'trainable' (from --set)"),
        ("backbone.filters=eight", "filters must be a comma-separated list"),
        ("head.units=3", "sets a head parameter"),
        ("filters=8", "--set takes KIND.PARAM=VALUE"),
    ],
)
def test_info_rejects_a_bad_set_with_exit_2(isolated, assignment, complaint):
    result = run_zoo("info", "small_cnn", "--layers", "--set", assignment)

    assert result.exit_code == 2
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr


def test_info_takes_set_only_to_build_the_layers_it_lists(isolated):
    result = run_zoo("info", "small_cnn", "--set", "backbone.filters=8")

    assert result.exit_code == 2
    assert "--set only with --layers" in result.stderr


def test_the_advice_for_a_required_parameter_works_in_zoo_info(isolated, tmp_path):
    write(tmp_path / "registry.toml", '[plugins]\nload = ["needs.py"]\n')
    write(
        tmp_path / "needs.py",
        """
        import zoo

        def build(image_shape, params):
            import keras
            conv = keras.layers.Conv2D(params["width"], 3, name="only_conv")
            model = keras.Sequential([keras.Input(image_shape), conv])
            return zoo.BuiltBackbone(model=model, preprocessing="unit")

        @zoo.hookimpl
        def register_backbones(register):
            register(zoo.Backbone(
                name="needs_width", description="A backbone without a default", build=build,
                params=[zoo.Param("width", int, required=True, help="conv filters")],
                min_image_size=3,
            ))
        """,
    )

    refused = run_zoo("info", "needs_width", "--layers")
    flag, assignment = refused.stderr.split("pass it on the command line: ")[1].split()[:2]
    listed = run_zoo(
        "info", "needs_width", "--layers", "--json", flag, assignment.replace("VALUE", "4")
    )

    assert refused.exit_code == 2
    assert (flag, assignment) == ("--set", "backbone.width=VALUE")
    assert "only_conv" in layer_names(listed)


def test_info_lists_a_kerashub_presets_layers(tiny_presets, isolated):
    refused = run_zoo("info", "keras_hub", "--layers")
    listed = run_zoo(
        "info", "keras_hub", "--layers", "--json", "--set", f"backbone.preset={tiny_presets.resnet}"
    )

    assert refused.exit_code == 2 and "--set backbone.preset=VALUE" in refused.stderr
    assert layer_names(listed)
    assert json.loads(listed.stdout)["params"]["preset"] == str(tiny_presets.resnet)


def test_info_on_a_recipe_describes_it(isolated):
    text = run_zoo("info", "tutorial_transfer")
    data = run_zoo("info", "tutorial_transfer", "--json")

    assert text.exit_code == 0, text.stderr
    assert "frozen ImageNet" in text.stdout
    assert "resnet50" in text.stdout and "backbone.weights=imagenet" in text.stdout
    [recipe] = [d for d in json.loads(data.stdout) if d.get("kind") == "recipe"]
    assert (recipe["dataset"], recipe["backbone"], recipe["head"]) == (
        "cats_vs_dogs",
        "resnet50",
        "gap_sigmoid",
    )
    assert recipe["settings"]["epochs"] == 7
    assert recipe["params"] == {"backbone": {"weights": "imagenet"}}


def test_an_unknown_name_is_still_an_error_naming_recipes_too(isolated):
    result = run_zoo("info", "tutorial_transfr")

    assert result.exit_code == 2
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["info", "small_cnn", "--bogus"], "usage: zoo info"),
        (["info"], "usage: zoo info"),
        (["run", "shapes", "small_cnn", "gap_sigmoid", "--epoks", "3"], "usage: zoo run"),
        (["cache", "list", "--bogus"], "usage: zoo cache list"),
    ],
)
def test_usage_errors_show_the_commands_usage(isolated, args, usage):
    result = run_zoo(*args)

    assert result.exit_code == 2
    assert result.stderr.startswith(usage)
    assert "COMMAND" not in result.stderr.splitlines()[0]
