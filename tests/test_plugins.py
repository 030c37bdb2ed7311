"""Loading plugins from their three sources, and finding what they register."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest
from helpers import tiny_backbone_plugin, write

import zoo
import zoo.builtins
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


def test_builtin_plugins_are_modules_of_zoo_builtins():
    """Imported by module name, as any installed plugin is: no package named
    ``plugins`` or ``zoo_plugins`` is made or needed."""
    registry = load_registry(LoadOptions(builtins_only=True))

    builtins = [p for p in registry.plugins if p.source == "built-in"]
    assert builtins and all(p.status == "ok" for p in builtins)
    assert {p.location for p in builtins} == {f"zoo.builtins.{p.name}" for p in builtins}
    assert registry.plugin_manager is not None
    shapes = registry.plugin_manager.get_plugin("shapes")
    assert shapes is sys.modules["zoo.builtins.shapes"]
    assert Path(shapes.__file__).parent == Path(zoo.builtins.__path__[-1])
    assert "zoo_plugins" not in sys.modules and "plugins" not in sys.modules


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
    assert "did you mean" in info.value.fix and "'small_cnn'" in info.value.fix
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
    assert [p for p in registry.plugins if p.source == "local"] == []


def local_plugin(isolated: Path, name: str, source: str) -> zoo.Registry:
    write(isolated / f"{name}.py", source)
    write(isolated / "registry.toml", f'[plugins]\nload = ["{name}.py"]\n')
    return load_registry()


def test_a_hook_that_raises_part_way_leaves_nothing_behind(isolated: Path):
    registry = local_plugin(
        isolated,
        "half",
        """
        import zoo

        @zoo.hookimpl
        def register_datasets(register):
            register(zoo.Dataset(name="first", description="kept?", build=print))
            raise KeyError("second")
        """,
    )

    plugin = next(p for p in registry.plugins if p.name == "half")
    assert (plugin.status, plugin.components, plugin.unavailable) == (
        "failed",
        [],
        ["dataset:first"],
    )
    assert "half:first" not in names(registry, "dataset")
    with pytest.raises(zoo.ZooError) as info:
        registry.get("dataset", "first")
    assert "plugin 'half' (local), which provides it, failed while registering" in info.value.what
    assert "KeyError: 'second'" in info.value.what


INVALID = [
    ("backbones", "zoo.Backbone(name='b', description='x', build=print, min_image_size=0)"),
    ("heads", "zoo.Head(name='h', description='x', build=print, min_classes=3, max_classes=2)"),
    ("datasets", "zoo.Dataset(name='d', description='x', build=print, class_names=['a', 'b'])"),
    ("heads", "zoo.Head(name='h', description=None, build=print)"),
    ("heads", "zoo.Head(name='h', description='x', build=print, params=zoo.Param('p', int))"),
    ("heads", "zoo.Head(name='h', description='x', build=print, params=[zoo.Param('p', int)] * 2)"),
    ("heads", "'gap_sigmoid'"),
]
COMPLAINTS = [
    "min_image_size",
    "max_classes",
    "class_names",
    "description",
    "parameters badly",
    "distinct names",
    "not a zoo.Dataset/Backbone/Head",
]


@pytest.mark.parametrize(("invalid", "complaint"), list(zip(INVALID, COMPLAINTS, strict=True)))
def test_an_invalid_component_marks_its_plugin_failed(isolated: Path, invalid, complaint):
    kinds, component = invalid
    source = (
        f"import zoo\n\n@zoo.hookimpl\ndef register_{kinds}(register):\n    register({component})\n"
    )

    registry = local_plugin(isolated, "invalid", source)

    plugin = next(p for p in registry.plugins if p.name == "invalid")
    assert plugin.status == "failed"
    assert complaint in plugin.error
    assert registry.get("dataset", "shapes")  # everything else still loads


def test_a_plugin_object_can_be_loaded_directly():
    class Inline:
        @staticmethod
        @zoo.hookimpl
        def register_heads(register):
            register(zoo.Head(name="inline_head", description="x", build=print))

    registry = load_registry(LoadOptions(builtins_only=True, extra=[Inline]))

    assert registry.get("head", "inline_head").plugin.name == "Inline"


def test_two_distributions_with_one_plugin_name_clash(isolated: Path, monkeypatch):
    write(isolated / "site" / "zoo_a.py", tiny_backbone_plugin("from_a"))
    write(isolated / "site" / "zoo_b.py", tiny_backbone_plugin("from_b"))
    monkeypatch.syspath_prepend(str(isolated / "site"))
    ep_a = importlib.metadata.EntryPoint(name="same", value="zoo_a", group="zoo")
    ep_b = importlib.metadata.EntryPoint(name="same", value="zoo_b", group="zoo")
    dists = [
        FakeDistribution("zoo-a", "1.0", [ep_a]),
        FakeDistribution("zoo_A", "1.0", [ep_a]),  # the same distribution, met twice on the path
        FakeDistribution("zoo-b", "2.0", [ep_b]),
    ]
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: dists)

    registry = load_registry()

    same = [p for p in registry.plugins if p.name == "same"]
    assert [(p.package, p.status) for p in same] == [("zoo-a", "ok"), ("zoo-b", "failed")]
    assert "named like plugin 'same' (zoo-a 1.0, entry point)" in same[1].error
    assert "same:from_a" in names(registry, "backbone")


# --- Hooks are called through pluggy, one plugin at a time ---------------------------


def head_plugin(name: str, calls: list[str], **marks: bool) -> type:
    """A plugin class called ``name`` whose ``register_heads`` (marked with ``marks``)
    records its call in ``calls`` and registers a head of its own name."""

    def register_heads(register):
        calls.append(name)
        register(zoo.Head(name=name.lower(), description="h", build=print))

    return type(name, (), {"register_heads": staticmethod(zoo.hookimpl(**marks)(register_heads))})


def test_hooks_are_called_in_pluggys_order_tryfirst_first():
    calls: list[str] = []
    plugins = [head_plugin("First", calls), head_plugin("Eager", calls, tryfirst=True)]

    registry = load_registry(
        LoadOptions(builtins_only=True, extra=[*plugins, head_plugin("Last", calls)])
    )

    assert calls[0] == "Eager"
    assert sorted(calls) == ["Eager", "First", "Last"]
    assert [registry.get("head", n).plugin.name for n in ("first", "eager", "last")] == [
        "First",
        "Eager",
        "Last",
    ]


@pytest.mark.parametrize("style", ["wrapper", "hookwrapper"])
def test_a_hook_wrapper_runs_around_its_own_plugins_hook(style: str):
    """A wrapper runs, and what it registers is its plugin's, like the hook it wraps."""
    seen: list[str] = []

    class Wrapped:
        @staticmethod
        @zoo.hookimpl
        def register_heads(register):
            seen.append("hook")
            register(zoo.Head(name="wrapped", description="h", build=print))

        @staticmethod
        @zoo.hookimpl(specname="register_heads", **{style: True})
        def around(register):
            seen.append("before")
            register(zoo.Head(name="by_wrapper", description="h", build=print))
            yield
            seen.append("after")

    registry = load_registry(LoadOptions(builtins_only=True, extra=[Wrapped]))

    assert seen == ["before", "hook", "after"]
    plugin = next(p for p in registry.plugins if p.name == "Wrapped")
    assert (plugin.status, sorted(plugin.components)) == ("ok", ["head:by_wrapper", "head:wrapped"])


def test_a_wrapper_that_raises_fails_its_own_plugin_only():
    class Broken:
        @staticmethod
        @zoo.hookimpl(wrapper=True)
        def register_heads(register):
            register(zoo.Head(name="broken_head", description="h", build=print))
            yield
            raise RuntimeError("wrapper broke")

    calls: list[str] = []
    registry = load_registry(
        LoadOptions(builtins_only=True, extra=[head_plugin("Before", calls), Broken])
    )

    broken = next(p for p in registry.plugins if p.name == "Broken")
    assert broken.status == "failed" and "RuntimeError: wrapper broke" in (broken.error or "")
    assert broken.unavailable == ["head:broken_head"] and broken.components == []
    assert registry.get("head", "before").plugin.name == "Before"
    assert registry.get("dataset", "shapes")  # the built-ins still load


def test_a_misspelt_specname_is_reported_like_a_misspelt_hook():
    class Typo:
        @staticmethod
        @zoo.hookimpl(specname="register_head")
        def heads(register):
            register(zoo.Head(name="typo_head", description="h", build=print))

    registry = load_registry(LoadOptions(builtins_only=True, extra=[Typo]))

    typo = next(p for p in registry.plugins if p.name == "Typo")
    assert typo.status == "failed"
    assert "register_head (did you mean register_heads?)" in (typo.error or "")
    assert "head:typo_head" not in names(registry, "head")


# --- One test per hook (tests/test_docs.py checks that each hook has one) ------------


def registered_through(hook: str, component: object) -> zoo.Entry:
    """Load a plugin whose ``hook`` registers ``component``; return what zoo recorded."""

    def implementation(register):
        register(component)

    plugin = type("Hooked", (), {hook: staticmethod(zoo.hookimpl(implementation))})
    registry = load_registry(LoadOptions(builtins_only=True, extra=[plugin]))
    [entry] = [e for e in registry if e.plugin.name == "Hooked"]
    assert entry.plugin.status == "ok"
    assert entry.plugin.components == [f"{entry.kind}:{entry.name}"]
    return entry


def test_hook_register_datasets():
    dataset = zoo.Dataset(name="hooked", description="d", build=print)

    entry = registered_through("register_datasets", dataset)

    assert (entry.kind, entry.qualified_name, entry.component) == (
        "dataset",
        "Hooked:hooked",
        dataset,
    )


def test_hook_register_backbones():
    backbone = zoo.Backbone(name="hooked", description="b", build=print, min_image_size=9)

    entry = registered_through("register_backbones", backbone)

    assert (entry.kind, entry.qualified_name, entry.component) == (
        "backbone",
        "Hooked:hooked",
        backbone,
    )


def test_hook_register_heads():
    head = zoo.Head(name="hooked", description="h", build=print, min_classes=3)

    entry = registered_through("register_heads", head)

    assert (entry.kind, entry.qualified_name, entry.component) == ("head", "Hooked:hooked", head)
