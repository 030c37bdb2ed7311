"""Plugins that need a package the user lacks are unavailable, not failed.

A plugin raises ``zoo.PluginUnavailable`` (zoo's keras_hub plugin does, without
keras-hub): zoo lists it as unavailable with the install command, never warns about
it, and only a run that asks for one of its components stops, saying what to install.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_zoo, write

#: A local plugin whose backbone needs ``fancylib``, which is not installed.
NEEDS_FANCYLIB = """
import zoo


def build(image_shape, params):
    import fancylib


@zoo.hookimpl
def register_backbones(register):
    register(zoo.Backbone(name="fancy", description="Needs fancylib", build=build))
    raise zoo.PluginUnavailable("needs the package fancylib", install="pip install fancylib")
"""
#: The same plugin finding out at import time.
NEEDS_FANCYLIB_AT_IMPORT = """
import zoo

raise zoo.PluginUnavailable("needs the package fancylib", install="pip install fancylib")
"""
#: Run first by every process with it on PYTHONPATH: keras_hub cannot be imported.
WITHOUT_KERAS_HUB = 'import sys\n\nsys.modules["keras_hub"] = None\n'


@pytest.fixture
def fancy(isolated: Path) -> Path:
    write(isolated / "fancy.py", NEEDS_FANCYLIB)
    return write(isolated / "registry.toml", '[plugins]\nload = ["fancy.py"]\n')


def test_a_plugin_lacking_a_package_is_unavailable_with_the_command(zoo_cli, fancy: Path):
    result = zoo_cli("plugins", "--json")

    [plugin] = [p for p in result.json() if p["name"] == "fancy"]
    assert plugin["status"] == "unavailable"
    assert plugin["error"] == "needs the package fancylib"
    assert plugin["install"] == "pip install fancylib"
    assert plugin["components"] == [] and plugin["unavailable"] == ["backbone:fancy"]


def test_zoo_list_shows_its_components_with_the_command_and_warns_of_nothing(zoo_cli, fancy: Path):
    result = zoo_cli("list", "backbones")

    assert result.exit_code == 0
    words = result.stdout.split()  # the table wraps its cells over several lines
    assert {"fancy", "unavailable:", "fancylib;", "pip"} <= set(words)
    assert "warning" not in result.stderr
    assert "fancy" not in {entry["name"] for entry in zoo_cli("list", "backbones", "--json").json()}


def test_a_run_asking_for_its_component_says_what_to_install(zoo_cli, fancy: Path):
    result = zoo_cli("run", "shapes", "fancy", "gap_sigmoid", "--dry-run")

    assert result.exit_code == 2
    assert "the backbone 'fancy' is unavailable: plugin 'fancy'" in result.stderr
    assert "needs the package fancylib" in result.stderr
    assert "fix: install them: pip install fancylib" in result.stderr


def test_raised_at_import_the_plugin_is_unavailable_too(zoo_cli, isolated: Path):
    write(isolated / "fancy.py", NEEDS_FANCYLIB_AT_IMPORT)
    write(isolated / "registry.toml", '[plugins]\nload = ["fancy.py"]\n')

    [plugin] = [p for p in zoo_cli("plugins", "--json").json() if p["name"] == "fancy"]

    assert (plugin["status"], plugin["install"]) == ("unavailable", "pip install fancylib")


def test_without_keras_hub_its_backbones_are_unavailable_and_nothing_else_breaks(
    isolated: Path,
):
    """Real ``zoo`` processes in which ``import keras_hub`` fails, as if not installed."""
    write(isolated / "no_keras_hub" / "sitecustomize.py", WITHOUT_KERAS_HUB)
    env = {"PYTHONPATH": str(isolated / "no_keras_hub")}

    plugins = run_zoo("plugins", "--json", env=env)
    listing = run_zoo("list", env=env)
    asked = run_zoo("run", "shapes", "hub_vit_base16", "gap_sigmoid", "--dry-run", env=env)
    other = run_zoo("run", "shapes", "small_cnn", "gap_sigmoid", "--dry-run", env=env)

    [hub] = [p for p in plugins.json() if p["name"] == "keras_hub"]
    assert hub["status"] == "unavailable" and hub["install"] == "pip install 'zoo[hub]'"
    assert {"backbone:keras_hub", "backbone:hub_vit_base16"} <= set(hub["unavailable"])
    assert listing.exit_code == 0
    assert {"hub_vit_base16", "unavailable:", "'zoo[hub]'"} <= set(listing.stdout.split())
    assert "warning" not in listing.stderr
    assert asked.exit_code == 2 and "install them: pip install 'zoo[hub]'" in asked.stderr
    assert other.exit_code == 0, other.stderr
    assert "warning" not in other.stderr and "keras_hub" not in other.stderr
