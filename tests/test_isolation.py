"""One broken plugin never takes zoo down: each failure kind, installed for real.

Every plugin here is a real installed distribution: a module and a ``*.dist-info``
folder (METADATA and entry_points.txt) in a site folder on ``PYTHONPATH``, so
importlib.metadata finds it exactly as it finds a package installed with pip. Each
broken kind sits next to a good plugin; ``zoo plugins`` reports it, other commands
warn in one line, the good plugin keeps working, and only a run that asks for the
broken plugin's component fails, naming the plugin and the cause.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import TINY_RUN, Result, run_zoo, tiny_backbone_plugin, write


def install(site: Path, dist: str, plugin: str, source: str, version: str = "1.0") -> None:
    """Install ``source`` as the module of distribution ``dist``, entry point ``plugin``."""
    module = dist.replace("-", "_")
    write(site / f"{module}.py", source)
    info = site / f"{module}-{version}.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    write(info / "entry_points.txt", f"[zoo]\n{plugin} = {module}\n")


@dataclass(frozen=True)
class Broken:
    """A broken plugin: its code, the component a user asks for, and the reason shown."""

    plugin: str
    source: str
    asks_for: tuple[str, str, str]  # zoo run DATASET BACKBONE HEAD
    reason: str
    provides_known: bool  # zoo saw it offer the component before it failed

    @property
    def dist(self) -> str:
        return f"zoo-{self.plugin.replace('_', '-')}"


BROKEN = [
    Broken(
        "fails_import",
        "import not_installed_dep\n",
        ("shapes", "fancy_net", "gap_sigmoid"),
        "could not be loaded: ModuleNotFoundError: No module named 'not_installed_dep'",
        provides_known=False,
    ),
    Broken(
        "exits_on_import",
        "import sys\nsys.exit('this plugin needs a GPU')\n",
        ("shapes", "gpu_net", "gap_sigmoid"),
        "could not be loaded: SystemExit: this plugin needs a GPU",
        provides_known=False,
    ),
    Broken(
        "raises_in_hook",
        """
        import zoo

        @zoo.hookimpl
        def register_datasets(register):
            register(zoo.Dataset(name="half_done", description="never kept", build=print))
            raise RuntimeError("the catalogue server is down\\nretry later")
        """,
        ("half_done", "small_cnn", "gap_sigmoid"),
        "failed while registering components: RuntimeError: the catalogue server is down "
        "retry later",
        provides_known=True,
    ),
    Broken(
        "missing_builder",
        """
        import zoo

        @zoo.hookimpl
        def register_backbones(register):
            register(zoo.Backbone(name="no_builder", description="no build", build=None))
        """,
        ("shapes", "no_builder", "gap_sigmoid"),
        "backbone 'no_builder' has no callable builder",
        provides_known=True,
    ),
    Broken(
        "bad_params",
        """
        import zoo

        @zoo.hookimpl
        def register_heads(register):
            register(zoo.Head(
                name="bad_params_head", description="x", build=print, params=[("rate", float)]
            ))
        """,
        ("shapes", "small_cnn", "bad_params_head"),
        "head 'bad_params_head' declares its parameters badly",
        provides_known=True,
    ),
    Broken(
        "bad_name",
        """
        import zoo

        @zoo.hookimpl
        def register_heads(register):
            register(zoo.Head(name="my-head", description="x", build=print))
        """,
        ("shapes", "small_cnn", "my-head"),
        "names must be valid Python identifiers",
        provides_known=True,
    ),
    Broken(
        "misspelt_hook",
        """
        import zoo

        @zoo.hookimpl
        def register_backbone(register):
            register(zoo.Backbone(name="typo_net", description="x", build=print))
        """,
        ("shapes", "typo_net", "gap_sigmoid"),
        "implements hooks zoo does not have: register_backbone (did you mean register_backbones?)",
        provides_known=False,
    ),
    Broken(
        "misspelt_argument",
        """
        import zoo

        @zoo.hookimpl
        def register_heads(regster):
            pass
        """,
        ("shapes", "small_cnn", "arg_head"),
        "could not be loaded: PluginValidationError",
        provides_known=False,
    ),
]
IDS = [b.plugin for b in BROKEN]

#: A plugin that loads fine, but whose builders break their contracts in ``zoo run``.
FAULTY = """
import zoo

def raises(image_shape, params):
    raise RuntimeError("out of filters")

def returns_a_model(image_shape, params):
    import keras
    return keras.Sequential([keras.Input(image_shape), keras.layers.Flatten()])

def breaks_in_keras(image_shape, params):
    import keras
    conv = keras.layers.Conv2D(4, 99)  # larger than the image: Keras raises when called
    return zoo.BuiltBackbone(keras.Sequential([keras.Input(image_shape), conv]))

def returns_a_tensor(features, num_classes, params):
    import keras
    return keras.layers.Dense(num_classes)(keras.layers.Flatten()(features))

def returns_a_dict(params):
    return {"train": [], "validation": [], "test": []}

@zoo.hookimpl
def register_backbones(register):
    for name, build in [("raising_net", raises), ("model_net", returns_a_model),
                        ("keras_net", breaks_in_keras)]:
        register(zoo.Backbone(name=name, description="faulty", build=build))

@zoo.hookimpl
def register_heads(register):
    register(zoo.Head(name="tensor_head", description="faulty", build=returns_a_tensor))

@zoo.hookimpl
def register_datasets(register):
    register(zoo.Dataset(name="dict_data", description="faulty", build=returns_a_dict))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder with a good plugin and every broken kind, each its own distribution."""
    site = tmp_path_factory.mktemp("site")
    install(site, "zoo-good", "good", tiny_backbone_plugin("good_net"), version="2.5.0")
    install(site, "zoo-faulty", "faulty", FAULTY)
    for broken in BROKEN:
        install(site, broken.dist, broken.plugin, broken.source)
    return site


def zoo_with(site: Path, *args: str, **env: str) -> Result:
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return run_zoo(*args, env={"PYTHONPATH": path, **env})


@pytest.fixture(scope="module")
def plugins(site: Path) -> dict[str, dict]:
    result = zoo_with(site, "plugins", "--json")
    assert result.exit_code == 0, result.stderr
    return {p["name"]: p for p in result.json()}


@pytest.fixture(scope="module")
def listing(site: Path) -> Result:
    return zoo_with(site, "list", "--json")


def test_the_good_plugin_loads_as_an_installed_distribution(plugins):
    good = plugins["good"]

    assert (good["status"], good["source"]) == ("ok", "entry point")
    assert (good["package"], good["version"]) == ("zoo-good", "2.5.0")
    assert good["components"] == ["backbone:good_net"]


@pytest.mark.parametrize("broken", BROKEN, ids=IDS)
def test_zoo_plugins_reports_each_broken_plugin_with_its_reason(plugins, broken: Broken):
    reported = plugins[broken.plugin]

    assert (reported["status"], reported["source"]) == ("failed", "entry point")
    assert (reported["package"], reported["version"]) == (broken.dist, "1.0")
    assert broken.reason in reported["error"]
    assert reported["components"] == []


def test_a_plugin_that_fails_part_way_leaves_nothing_behind(plugins, listing: Result):
    assert plugins["raises_in_hook"]["unavailable"] == ["dataset:half_done"]
    datasets = [d["qualified_name"] for d in listing.json()["datasets"]]
    assert "raises_in_hook:half_done" not in datasets


def test_other_commands_warn_once_per_broken_plugin_in_one_line(listing: Result):
    assert listing.exit_code == 0
    lines = listing.stderr.splitlines()
    for broken in BROKEN:
        mine = [line for line in lines if line.startswith(f"warning: plugin '{broken.plugin}'")]
        assert len(mine) == 1, listing.stderr
        assert broken.reason in mine[0]
    assert len(lines) == len(BROKEN), listing.stderr
    backbones = [b["qualified_name"] for b in listing.json()["backbones"]]
    assert "good:good_net" in backbones and "small_cnn:small_cnn" in backbones


@pytest.mark.parametrize("broken", BROKEN, ids=IDS)
def test_only_a_run_asking_for_its_component_fails_naming_plugin_and_cause(
    site: Path, broken: Broken
):
    result = zoo_with(site, "run", *broken.asks_for, "--dry-run")

    assert result.exit_code == 2
    error = result.stderr[result.stderr.index("error:") :]
    assert f"'{broken.plugin}' (zoo-{broken.plugin.replace('_', '-')} 1.0)" in error
    assert broken.reason in " ".join(error.split())
    assert ("which provides it" in error) == broken.provides_known
    assert "Traceback" not in result.stderr


def test_a_qualified_name_from_a_broken_plugin_names_it_and_the_cause(site: Path):
    result = zoo_with(site, "info", "fails_import:fancy_net")

    assert result.exit_code == 2
    assert "'fails_import:fancy_net' is unavailable: plugin 'fails_import'" in result.stderr
    assert "ModuleNotFoundError" in result.stderr


def test_the_good_plugin_trains_next_to_every_broken_one(site: Path, zoo_cli, monkeypatch):
    monkeypatch.syspath_prepend(str(site))  # importlib.metadata now sees the site's dists

    result = zoo_cli("run", "shapes", "good_net", "gap_sigmoid", *TINY_RUN, "--json")

    assert result.exit_code == 0, result.stderr
    assert result.json()["status"] == "completed"
    assert result.stderr.count("warning: plugin") == len(BROKEN)


@pytest.mark.parametrize(
    ("names", "complaint"),
    [
        (
            ("shapes", "raising_net", "gap_sigmoid"),
            "backbone 'raising_net' from plugin faulty (zoo-faulty 1.0) failed: "
            "RuntimeError: out of filters (",
        ),
        (
            ("shapes", "keras_net", "gap_sigmoid"),
            "backbone 'keras_net' from plugin faulty (zoo-faulty 1.0) failed: ValueError: ",
        ),
        (
            ("shapes", "model_net", "gap_sigmoid"),
            "backbone 'model_net' from plugin faulty (zoo-faulty 1.0) returned Sequential, "
            "not zoo.BuiltBackbone",
        ),
        (
            ("shapes", "small_cnn", "tensor_head"),
            "head 'tensor_head' from plugin faulty (zoo-faulty 1.0) returned KerasTensor, "
            "not zoo.BuiltHead",
        ),
        (
            ("dict_data", "small_cnn", "gap_sigmoid"),
            "dataset 'dict_data' from plugin faulty (zoo-faulty 1.0) returned dict, not zoo.Splits",
        ),
    ],
    ids=["raises", "raises-inside-keras", "returns-a-model", "returns-a-tensor", "returns-a-dict"],
)
def test_a_builder_that_breaks_in_zoo_run_is_an_error_naming_plugin_and_component(
    site: Path, zoo_cli, monkeypatch, names, complaint
):
    monkeypatch.syspath_prepend(str(site))
    tiny = TINY_RUN if names[0] == "shapes" else TINY_RUN[:6]  # no dataset.* settings

    result = zoo_cli("run", *names, *tiny)

    assert result.exit_code == 1
    error = " ".join(result.stderr[result.stderr.index("error:") :].split())
    assert complaint in error
    assert "Traceback" not in result.stderr
    if "failed:" in complaint:  # the line named is the plugin's own, even inside Keras
        assert f"{site / 'zoo_faulty.py'}:" in error


def test_zoo_plugins_prints_a_table_of_every_plugin(site: Path, zoo_cli, monkeypatch):
    monkeypatch.syspath_prepend(str(site))

    result = zoo_cli("plugins")

    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if "entry point" in line}
    assert "ok" in rows["good"] and "backbone:good_net" in rows["good"]
    assert all("failed" in rows[broken.plugin] for broken in BROKEN)
    assert "built-in" in result.stdout


@pytest.mark.parametrize(
    ("how", "env"),
    [
        (["--disable-plugin", "raises_in_hook", "--disable-plugin", "fails_import"], {}),
        ([], {"ZOO_DISABLE_PLUGINS": "raises_in_hook, fails_import"}),
    ],
    ids=["option", "environment"],
)
def test_disabled_plugins_are_listed_skipped_and_not_warned_about(site: Path, how, env):
    listed = zoo_with(site, "plugins", "--json", *how, **env)
    warned = zoo_with(site, "list", *how, **env)

    status = {p["name"]: p["status"] for p in listed.json()}
    assert status["raises_in_hook"] == status["fails_import"] == "disabled"
    assert status["good"] == "ok"
    assert "'raises_in_hook'" not in warned.stderr and "'fails_import'" not in warned.stderr
    assert warned.stderr.count("warning: plugin") == len(BROKEN) - 2


def test_a_run_asking_for_a_disabled_plugins_component_says_so(site: Path):
    result = zoo_with(
        site, "run", "shapes", "good:good_net", "gap_sigmoid", "--disable-plugin", "good"
    )

    assert result.exit_code == 2
    assert "plugin 'good' is disabled" in result.stderr


def test_a_misspelt_disable_name_is_a_warning_with_a_suggestion(site: Path):
    result = zoo_with(site, "list", "--disable-plugin", "god")

    assert "names 'god', but no plugin is called that; did you mean 'good'?" in result.stderr


def test_builtins_only_loads_nothing_else_and_warns_about_nothing(site: Path):
    result = zoo_with(site, "plugins", "--json", "--builtins-only")

    assert {p["source"] for p in result.json()} == {"built-in"}
    assert result.stderr == ""


def test_a_component_name_clash_with_a_builtin_names_both_plugins(tmp_path: Path):
    install(tmp_path, "zoo-rival", "rival", tiny_backbone_plugin("small_cnn"))

    listed = zoo_with(tmp_path, "list", "backbones", "--json")
    run = zoo_with(tmp_path, "run", "shapes", "small_cnn", "gap_sigmoid", "--dry-run")

    owners = {b["qualified_name"] for b in listed.json() if b["name"] == "small_cnn"}
    assert owners == {"small_cnn:small_cnn", "rival:small_cnn"}
    assert run.exit_code == 2
    assert "'small_cnn' (zoo) and 'rival' (zoo-rival)" in run.stderr
    assert "small_cnn:small_cnn or rival:small_cnn" in run.stderr


def test_a_plugin_named_like_a_builtin_plugin_fails_and_names_it(tmp_path: Path):
    install(tmp_path, "zoo-heads", "heads", tiny_backbone_plugin("other_net"))

    plugins = zoo_with(tmp_path, "plugins", "--json").json()

    impostor = next(p for p in plugins if p["package"] == "zoo-heads")
    assert impostor["status"] == "failed"
    assert "named like plugin 'heads' (zoo " in impostor["error"]
    assert (
        next(p for p in plugins if p["package"] == "zoo" and p["name"] == "heads")["status"] == "ok"
    )
