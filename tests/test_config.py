"""registry.toml files, recipes, and resolving a run's parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write

import zoo
from zoo.config.registry_file import read_registry_file
from zoo.plugins import load_registry


def resolve(*sets: str, names=("shapes", "small_cnn", "gap_sigmoid"), **settings):
    return zoo.resolve_run(load_registry(), list(names), sets=list(sets), settings=settings)


def test_defaults_come_from_the_builtin_registry():
    config = resolve().config

    assert (config.epochs, config.image_size, config.batch_size) == (7, 100, 32)
    assert (config.optimizer, config.learning_rate) == ("adam", 0.001)
    assert config.dataset.params["classes"] == "circle,square"
    assert config.backbone.qualified_name == "small_cnn:small_cnn"


def test_set_overrides_component_parameters_with_their_types():
    config = resolve("dataset.num_images=50", "backbone.trainable=false", "head.dropout=0.5").config

    assert config.dataset.params["num_images"] == 50
    assert config.backbone.params["trainable"] is False
    assert config.head.params["dropout"] == 0.5


def test_an_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(zoo.ZooError) as info:
        resolve("dataset.num_image=50")

    message = str(info.value)
    assert "no parameter 'num_image'" in message
    assert "did you mean 'num_images'" in message
    assert "num_images (int, default" in message and "noise (float" in message


@pytest.mark.parametrize(
    ("assignment", "complaint"),
    [
        ("dataset.num_images=many", "is not an integer"),
        ("backbone.trainable=perhaps", "is not a boolean"),
        ("head.dropout=high", "is not a number"),
        ("dataset.num_images=3", "below the minimum"),
    ],
)
def test_a_badly_typed_value_is_an_error_naming_the_parameter(assignment, complaint):
    with pytest.raises(zoo.ZooError) as info:
        resolve(assignment)

    assert complaint in str(info.value)
    assert "its parameters are:" in str(info.value)


@pytest.mark.parametrize("assignment", ["weights=none", "model.weights=none", "backbone.=x"])
def test_set_needs_kind_dot_param_equals_value(assignment):
    with pytest.raises(zoo.ZooError, match="--set"):
        resolve(assignment)


def test_command_line_settings_beat_registry_files(isolated: Path):
    write(isolated / "registry.toml", "[run]\nepochs = 3\nbatch_size = 4\n")

    config = resolve(epochs=2).config

    assert (config.epochs, config.batch_size) == (2, 4)


def test_user_registry_sets_component_defaults(isolated: Path):
    write(
        isolated / "registry.toml",
        """
        [components.dataset.shapes]
        description = "Circles and rings"
        defaults = { classes = "circle,ring", num_images = 60 }
        """,
    )
    registry = load_registry()

    config = zoo.resolve_run(registry, ["shapes", "small_cnn", "gap_sigmoid"]).config

    assert config.dataset.params["classes"] == "circle,ring"
    assert config.dataset.params["num_images"] == 60
    assert registry.get("dataset", "shapes").description == "Circles and rings"


def test_a_recipe_names_components_and_settings(isolated: Path):
    write(
        isolated / "registry.toml",
        """
        [recipes.quick]
        description = "A quick check"
        dataset = "shapes"
        backbone = "small_cnn"
        head = "gap_softmax"
        epochs = 2
        image_size = 48
        params = { dataset = { classes = "3" } }
        """,
    )

    config = zoo.resolve_run(load_registry(), recipe="quick", settings={"epochs": 1}).config

    assert (config.head.name, config.image_size, config.epochs) == ("gap_softmax", 48, 1)
    assert config.dataset.params["classes"] == "3"
    assert config.recipe == "quick"


def test_an_unknown_recipe_suggests_the_closest():
    with pytest.raises(zoo.ZooError, match="did you mean 'shapes_scratch'"):
        zoo.resolve_run(load_registry(), recipe="shape_scratch")


def test_a_recipe_and_names_together_are_an_error():
    with pytest.raises(zoo.ZooError, match="either --recipe or"):
        zoo.resolve_run(load_registry(), ["shapes", "small_cnn", "gap_sigmoid"], recipe="x")


def test_a_sigmoid_head_on_three_classes_is_caught_before_any_data():
    with pytest.raises(zoo.ZooError) as info:
        resolve("dataset.classes=circle,square,ring")

    assert "supports exactly 2 classes" in str(info.value)
    assert "gap_softmax" in str(info.value)


def test_a_head_that_does_not_fit_suggests_the_registered_heads_that_do(isolated: Path):
    write(
        isolated / "three_way.py",
        """
        import zoo

        @zoo.hookimpl
        def register_heads(register):
            register(zoo.Head(name="three_way", description="Exactly three classes",
                              build=print, min_classes=3, max_classes=3))
        """,
    )
    write(isolated / "registry.toml", '[plugins]\nload = ["three_way.py"]\n')

    with pytest.raises(zoo.ZooError) as info:
        resolve("dataset.classes=circle,square,ring")

    fix = info.value.fix or ""
    assert "'three_way'" in fix and "'gap_softmax'" in fix
    assert "gap_sigmoid" not in fix


def test_an_image_smaller_than_the_backbone_minimum_is_an_error():
    with pytest.raises(zoo.ZooError, match="at least 22x22"):
        resolve(image_size=16)


def test_a_toml_syntax_error_names_the_file_and_line(isolated: Path):
    path = write(isolated / "registry.toml", "[run]\nepochs = 3\nbatch_size = = 4\n")

    with pytest.raises(zoo.ZooError) as info:
        read_registry_file(path)

    assert str(path) in str(info.value)
    assert "line 3" in str(info.value)


def test_an_unreadable_registry_file_says_why_and_keeps_the_cause_for_verbose(isolated: Path):
    folder = isolated / "registry.toml"
    folder.mkdir()

    with pytest.raises(zoo.ZooError) as info:
        read_registry_file(folder)

    assert str(info.value).startswith(f"cannot read the registry file {folder}: Is a directory.")
    assert info.value.got == str(folder)
    assert isinstance(info.value.__cause__, IsADirectoryError)  # zoo --verbose prints it


@pytest.mark.parametrize(
    ("text", "line", "complaint"),
    [
        (
            "[run]\nepochs = 3\nepoch = 4\n",
            3,
            "unknown key 'epoch' in [run] (did you mean 'epochs'?)",
        ),
        ("[run]\n\nepochs = 'three'\n", 3, "bad value for 'epochs'"),
        ("[plugins]\nload = 'x.py'\n", 2, "must be a list of strings"),
        ("[stuff]\nx = 1\n", 1, "unknown key 'stuff'"),
        ("[run]\n[recipes.r]\ndataset = 'shapes'\n", 2, "recipe 'r' needs backbone, head"),
        ("[components.model.x]\n", 1, "unknown key 'model'"),
    ],
)
def test_a_malformed_registry_is_reported_with_its_line(isolated: Path, text, line, complaint):
    path = write(isolated / "registry.toml", text)

    with pytest.raises(zoo.ZooError) as info:
        read_registry_file(path)

    assert f"{path}:{line}" in str(info.value)
    assert complaint in str(info.value)


def test_defaults_for_an_unregistered_component_are_a_warning(isolated: Path):
    write(isolated / "registry.toml", "[run]\n[components.backbone.resnt50]\ndefaults = {}\n")

    registry = load_registry()

    assert any("no backbone named 'resnt50'" in w and ":2" in w for w in registry.warnings)


def test_the_config_round_trips_through_json():
    config = resolve("dataset.num_images=50").config

    assert zoo.RunConfig.from_dict(config.to_dict()) == config
