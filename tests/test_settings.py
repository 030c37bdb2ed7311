"""Run settings are declared once (zoo/config/settings.py); flags, config, checks and compare
follow."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write

import zoo
from zoo.cli import build_parser
from zoo.config.settings import SETTINGS, Setting
from zoo.plugins import load_registry
from zoo.results.compare import flat_settings

NAMES = ["shapes", "small_cnn", "gap_sigmoid"]
#: A value each setting accepts that differs from its default, as typed on a command line.
GIVEN = {
    "epochs": "3",
    "batch_size": "8",
    "image_size": "48",
    "learning_rate": "0.01",
    "optimizer": "sgd",
    "weight_decay": "0.01",
    "lr_schedule": "cosine",
    "warmup_epochs": "1",
    "plateau_patience": "3",
    "plateau_factor": "0.2",
    "class_weight": "balanced",
    "label_smoothing": "0.1",
    "ema": None,
    "ema_momentum": "0.9",
    "seed": "5",
    "feature_cache": None,  # a flag without a value
    "runtime": "tensorflow",
    "runtime_precision": "bfloat16",
    "keep": "last",
    "monitor": "val_accuracy",
    "early_stopping": "2",
    "augment": None,
    "augment_flip": "both",
    "augment_rotation": "0.2",
    "augment_zoom": "0.3",
    "augment_translation": "0.05",
    "augment_contrast": "0.4",
    "augment_views": "2",
    "fine_tune_epochs": "1",
    "fine_tune_layers": "2",
    "fine_tune_lr": "0.0001",
    "track": "mlflow",  # the built-in observer (zoo[mlflow], which the tests install)
}
#: What a setting needs besides: fine-tuning must know what to unfreeze, and for how long.
NEEDS = {
    "fine_tune_epochs": {"fine_tune_layers": "2"},
    "fine_tune_layers": {"fine_tune_epochs": 1},
}


def by_setting(function):
    return pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)(function)


def test_every_declared_setting_has_an_example_value_here():
    assert set(GIVEN) == {s.name for s in SETTINGS}


@by_setting
def test_every_setting_is_a_flag_of_zoo_run_and_reaches_the_run_config(setting: Setting):
    value = GIVEN[setting.name]
    args = build_parser().parse_args(["run", *NAMES, setting.flag, *([value] if value else [])])
    settings = {s.name: getattr(args, s.name) for s in SETTINGS}

    config = zoo.resolve_run(
        load_registry(), NAMES, settings={**settings, **NEEDS.get(setting.name, {})}
    ).config

    expected = setting.coerce(value) if value is not None else not setting.default
    assert getattr(config, setting.name) == expected
    others = [s for s in SETTINGS if s is not setting and getattr(args, s.name) is not None]
    assert others == []  # an unset flag leaves the registry's value alone


def bad_value(setting: Setting) -> object:
    """A value ``setting``'s declaration rejects."""
    if setting.type is bool:
        return "maybe"
    if setting.choices:
        return "no-such-choice"
    if setting.minimum is not None:
        return setting.type(setting.minimum - 1)
    return None


@by_setting
def test_every_setting_is_checked_in_a_registry_file(setting: Setting, isolated: Path):
    value = bad_value(setting)
    if value is None:
        pytest.skip(f"any {setting.type_name} is a valid {setting.name}")
    write(isolated / "registry.toml", f"[run]\n{setting.name} = {value!r}\n".replace("'", '"'))

    with pytest.raises(zoo.ZooError, match=f"bad value for '{setting.name}'") as info:
        load_registry()

    assert "registry.toml:2" in str(info.value)


@by_setting
def test_every_setting_may_be_given_by_a_recipe(setting: Setting, isolated: Path):
    value = GIVEN[setting.name]
    given = {setting.name: not setting.default if value is None else setting.coerce(value)}
    lines = [f"{k} = {v!r}" for k, v in {**given, **NEEDS.get(setting.name, {})}.items()]
    write(
        isolated / "registry.toml",
        '[recipes.mine]\ndataset = "shapes"\nbackbone = "small_cnn"\nhead = "gap_sigmoid"\n'
        + "\n".join(lines).replace("'", '"').replace("False", "false").replace("True", "true")
        + "\n",
    )

    config = zoo.resolve_run(load_registry(), recipe="mine").config

    assert getattr(config, setting.name) != setting.default


def test_config_json_of_an_older_run_reads_with_the_defaults_of_newer_settings():
    config = zoo.resolve_run(load_registry(), NAMES, settings={"epochs": 2}).config
    older = {k: v for k, v in config.to_dict().items() if not k.startswith(("fine_", "early"))}

    read = zoo.RunConfig.from_dict({**older, "command": ["zoo", "run"]})

    assert read == config
    assert list(config.to_dict()) == [
        "dataset",
        "backbone",
        "head",
        *(s.name for s in SETTINGS),
        "recipe",
    ]


def test_compare_tells_runs_apart_by_every_setting():
    config = zoo.resolve_run(load_registry(), NAMES).config.to_dict()

    flat = flat_settings(config)

    assert {s.name for s in SETTINGS} <= set(flat)
    # An older run's config.json without a setting ran with its default.
    older = {k: v for k, v in config.items() if k != "early_stopping"}
    assert flat_settings(older) == flat
