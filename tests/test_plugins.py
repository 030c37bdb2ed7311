"""Loading plugins from their three sources, and finding what they register."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from conftest import tiny_backbone_plugin, write

import zoo
from zoo.plugins import LoadOptions, builtin_registry_path, load_registry


def names(registry: zoo.Registry, kind: str) -> list[str]:
    return [e.qualified_name for e in registry.entries(kind)]


def test_builtin_plugins_register_the_tutorial_components():
    registry = load_registry()

    assert "shapes:shapes" in names(registry, "dataset")
    assert "small_cnn:small_cnn" in names(registry, "backbone")
    assert {"heads:gap_sigmoid", "heads:gap_softmax"} <= set(names(registry, "head"))
    shapes = registry.get("dataset", "shapes")
    assert (shapes.plugin.source, shapes.plugin.package) == ("built-in", "zoo")
    assert shapes.plugin.version == zoo.__version__


def test_local_plugin_from_registry_toml_in_the_working_directory(isolated: Path):
    write(isolated / "my_backbone.py", tiny_backbone_plugin("mine"))
    write(isolated / "registry.toml", '[plugins]\nload = ["my_backbone.py"]\n')

    entry = load_registry().get("backbone", "mine")

    assert entry.plugin.source == "local"
    assert entry.plugin.name == "my_backbone"
    assert entry.plugin.location == str(isolated / "my_backbone.py")


def test_registry_path_from_option_and_from_environment(isolated: Path, monkeypatch):
    write(isolated / "elsewhere" / "one.py", tiny_backbone_plugin("one"))
    write(isolated / "elsewhere" / "reg.toml", '[plugins]\nload = ["one.py"]\n')
    write(isolated / "env" / "two.py", tiny_backbone_plugin("two"))
    write(isolated / "env" / "reg.toml", '[plugins]\nload = ["two.py"]\n')
    monkeypatch.setenv("ZOO_REGISTRY", str(isolated / "env" / "reg.toml"))

    from_env = load_registry()
    from_option = load_registry(LoadOptions(registry=isolated / "elsewhere" / "reg.toml"))

    assert "two:two" in names(from_env, "backbone")
    assert "one:one" in names(from_option, "backbone")
    assert "two:two" not in names(from_option, "backbone")


def test_a_missing_registry_file_is_a_clear_error(isolated: Path):
    with pytest.raises(zoo.ZooError, match="does not exist") as info:
        load_registry(LoadOptions(registry=isolated / "nope.toml"))
    assert "--registry" in str(info.value)


class FakeDistribution:
    """An installed distribution as importlib.metadata presents it (as pluggy's tests do)."""

    def __init__(self, name: str, version: str, entry_points: list[importlib.metadata.EntryPoint]):
        self.metadata = {"Name": name}
        self.version = version
        self.entry_points = entry_points


def test_entry_point_plugins_record_their_distribution(isolated: Path, monkeypatch):
    write(isolated / "site" / "zoo_fancy.py", tiny_backbone_plugin("fancy"))
    monkeypatch.syspath_prepend(str(isolated / "site"))
    ep = importlib.metadata.EntryPoint(name="fancy", value="zoo_fancy", group="zoo")
    other = importlib.metadata.EntryPoint(name="x", value="os", group="console_scripts")
    monkeypatch.setattr(
        importlib.metadata,
        "distributions",
        lambda: [FakeDistribution("zoo-fancy", "1.2.3", [ep, other])],
    )

    entry = load_registry().get("backbone", "fancy")

    assert (entry.plugin.source, entry.plugin.package, entry.plugin.version) == (
        "entry point",
        "zoo-fancy",
        "1.2.3",
    )
    assert entry.qualified_name == "fancy:fancy"


def test_builtins_only_skips_entry_points_and_local_plugins(isolated: Path):
    write(isolated / "my_backbone.py", tiny_backbone_plugin("mine"))
    write(isolated / "registry.toml", '[plugins]\nload = ["my_backbone.py"]\n')

    registry = load_registry(LoadOptions(builtins_only=True))

    assert "my_backbone:mine" not in names(registry, "backbone")
    assert {p.source for p in registry.plugins} == {"built-in"}


def test_a_name_registered_by_two_plugins_needs_its_plugin(isolated: Path):
    write(isolated / "first.py", tiny_backbone_plugin("twin"))
    write(isolated / "second.py", tiny_backbone_plugin("twin"))
    write(isolated / "registry.toml", '[plugins]\nload = ["first.py", "second.py"]\n')
    registry = load_registry()

    with pytest.raises(zoo.ZooError) as info:
        registry.get("backbone", "twin")

    message = str(info.value)
    assert "'first'" in message and "'second'" in message
    assert "first:twin" in message and "second:twin" in message
    assert registry.get("backbone", "second:twin").plugin.name == "second"


def test_an_unknown_name_lists_the_closest_names():
    registry = load_registry()

    with pytest.raises(zoo.ZooError) as info:
        registry.get("backbone", "smal_cnn")

    assert "no backbone named 'smal_cnn'" in str(info.value)
    assert "did you mean 'small_cnn'" in str(info.value)
    assert info.value.exit_code == 2


def test_a_plugin_that_registers_the_same_name_twice_is_skipped(isolated: Path):
    write(
        isolated / "double.py",
        """
        import zoo

        @zoo.hookimpl
        def register_heads(register):
            for _ in range(2):
                register(zoo.Head(name="dup", description="twice", build=print))
        """,
    )
    write(isolated / "registry.toml", '[plugins]\nload = ["double.py"]\n')

    registry = load_registry()

    plugin = next(p for p in registry.plugins if p.name == "double")
    assert plugin.status == "failed"
    assert "twice" in plugin.error
    assert "double:dup" not in names(registry, "head")


def test_a_misspelt_hook_marks_the_plugin_failed(isolated: Path):
    write(
        isolated / "typo.py",
        "import zoo\n\n@zoo.hookimpl\ndef register_backbone(register):\n    pass\n",
    )
    write(isolated / "registry.toml", '[plugins]\nload = ["typo.py"]\n')

    registry = load_registry()

    plugin = next(p for p in registry.plugins if p.name == "typo")
    assert plugin.status == "failed"
    assert "register_backbone" in plugin.error
    assert registry.get("dataset", "shapes")  # the rest still loads


def test_disabled_plugins_are_listed_but_not_loaded(monkeypatch):
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "small_cnn")

    registry = load_registry()

    plugin = next(p for p in registry.plugins if p.name == "small_cnn")
    assert plugin.status == "disabled"
    assert "small_cnn:small_cnn" not in names(registry, "backbone")


def test_zoos_own_registry_in_the_working_directory_is_not_loaded_twice(isolated: Path):
    write(isolated / "registry.toml", builtin_registry_path().read_text())

    registry = load_registry()

    assert [p for p in registry.plugins if p.status != "ok"] == []
    assert all(p.source == "built-in" for p in registry.plugins)
