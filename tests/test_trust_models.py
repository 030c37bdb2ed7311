"""Opening a model someone else made runs none of their code; a tampered manifest is an error.

A run trained by an earlier process is copied to ``runs/mine``, and its model.keras's
``zoo.json`` rewritten as anyone who hands over a run directory could: its
``keras_objects`` name modules to import (the standard library's ``this``, which prints
the Zen of Python, and ``venv.__main__``, which builds virtual environments; a
``payload.py`` shipped in the run directory), or its fields hold what zoo never writes.
Each is opened the ways users open a model: ``zoo predict``, ``zoo evaluate`` and
``zoo export`` run as ``python -m zoo`` (which puts the current folder on ``sys.path``),
and ``zoo.load_model`` in a Python process started in the folder, as a notebook is.
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    TINY_RUN,
    Result,
    replace_members,
    rewrite_manifest,
    run_process,
    run_zoo,
    tiny_backbone_plugin,
    write,
)
from PIL import Image

from zoo.errors import ZooError
from zoo.results.saving import read_archive

#: A module that leaves a file beside itself when it is imported.
PAYLOAD = """
from pathlib import Path

Path(__file__).with_name("payload-ran").write_text("imported")
"""
#: ``zoo.load_model`` as a notebook calls it; a ZooError exits 2 as the CLI does.
LOAD_MODEL = """
import sys
import zoo

try:
    zoo.load_model(sys.argv[1])
except zoo.ZooError as exc:
    print(exc, file=sys.stderr)
    sys.exit(2)
"""
ZEN = "Beautiful is better than ugly"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny binary run, trained by the zoo command in another process."""
    folder = tmp_path_factory.mktemp("trained")
    result = run_zoo("run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--json", cwd=folder)
    assert result.exit_code == 0, result.stderr
    return folder / result.json()["run_dir"]


@pytest.fixture
def run_dir(trained: Path, isolated: Path) -> Path:
    """A copy of the run at ./runs/mine with payload.py beside its model; ./img.png."""
    copy = isolated / "runs" / "mine"
    shutil.copytree(trained, copy)
    write(copy / "payload.py", PAYLOAD)
    Image.new("RGB", (40, 40), (200, 40, 40)).save(isolated / "img.png")
    return copy


def name_module(module: str, plugin: str | None = None) -> Callable[[dict[str, Any]], None]:
    """A change to zoo.json: the backbone's plugin (``plugin``, if given) needs ``module``."""

    def change(manifest: dict[str, Any]) -> None:
        manifest["keras_objects"].append(
            {
                "name": "evil>Payload",
                "module": module,
                "qualname": "Payload",
                "component": "backbone",
            }
        )
        if plugin is not None:
            manifest["components"]["backbone"]["plugin"] = plugin

    return change


def open_model(command: str, run_dir: Path, cwd: Path) -> Result:
    """Open ``run_dir`` from ``cwd`` as a user does, with the current folder on sys.path."""
    zoo = [sys.executable, "-m", "zoo"]
    commands = {
        "predict": [*zoo, "predict", str(run_dir), str(cwd / "img.png")],
        "evaluate": [*zoo, "evaluate", str(run_dir)],
        "export": [*zoo, "export", str(run_dir), "--output", "out.keras"],
        "load_model": [sys.executable, "-c", LOAD_MODEL, str(run_dir)],
    }
    return run_process(commands[command], cwd=cwd)


def assert_refused(result: Result, module: str, plugin: str, isolated: Path) -> None:
    output = result.stdout + result.stderr
    assert not list(isolated.rglob("payload-ran")), "payload.py was imported"
    assert not list(isolated.rglob("pyvenv.cfg")), "venv.__main__ was imported"
    assert ZEN not in output
    assert "usage: venv" not in output
    assert result.exit_code == 2, output[-3000:]
    assert "Traceback" not in output
    message = " ".join(result.stderr.split())
    assert f"names the module '{module}'" in message
    assert f"plugin '{plugin}'" in message


COMMANDS = ["predict", "evaluate", "export", "load_model"]
#: Every way to open a model with one module, and every module with two of them: all
#: four go through one load path, and each case costs a process that imports TensorFlow.
OPENINGS = [
    *(("this", command) for command in COMMANDS),
    *((module, command) for module in ("venv.__main__", "runs.mine.payload")
      for command in ("predict", "load_model")),
]  # fmt: skip


@pytest.mark.parametrize(("module", "command"), OPENINGS)
def test_a_model_naming_a_module_outside_its_plugin_imports_nothing(
    run_dir: Path, isolated: Path, command: str, module: str
):
    """Built-in plugins are always loaded: the model claims one, small_cnn."""
    rewrite_manifest(run_dir / "model.keras", name_module(module))

    result = open_model(command, run_dir, cwd=isolated)

    assert_refused(result, module, "small_cnn", isolated)
    assert not (isolated / "out.keras").exists()


@pytest.mark.parametrize("command", ["predict", "load_model"])
def test_a_module_shipped_in_the_run_directory_is_not_imported_from_inside_it(
    run_dir: Path, isolated: Path, command: str
):
    """Run from inside the run directory, ``payload`` is importable: zoo must not."""
    rewrite_manifest(run_dir / "model.keras", name_module("payload"))
    shutil.copy(isolated / "img.png", run_dir / "img.png")

    result = open_model(command, run_dir, cwd=run_dir)

    assert_refused(result, "payload", "small_cnn", isolated)


def test_a_local_plugin_s_package_does_not_reach_into_a_run_directory_beneath_it(
    run_dir: Path, isolated: Path
):
    """zoo_local_plugins finds modules in the registry.toml's folder, runs/ included."""
    write(isolated / "tiny.py", tiny_backbone_plugin())
    write(isolated / "registry.toml", '[plugins]\nload = ["tiny.py"]\n')
    module = "zoo_local_plugins.runs.mine.payload"
    rewrite_manifest(run_dir / "model.keras", name_module(module, plugin="tiny"))

    result = open_model("predict", run_dir, cwd=isolated)

    assert_refused(result, module, "tiny", isolated)


LIBRARY_LAYERS = """
import keras


@keras.saving.register_keras_serializable(package="extlib")
class Doubling(keras.layers.Layer):
    def call(self, x):
        return x * 2.0
"""

LIBRARY_PLUGIN = """
import zoo


def build(image_shape, params):
    import keras
    from extlib.layers import Doubling  # a library's layer, imported by the builder only

    model = keras.Sequential([keras.Input(image_shape), keras.layers.Conv2D(4, 3), Doubling()])
    return zoo.BuiltBackbone(model=model, preprocessing="unit")


@zoo.hookimpl
def register_backbones(register):
    register(zoo.Backbone(name="doubling", description="Conv2D + a library's layer", build=build))
"""


def test_a_library_s_layer_loads_by_rebuilding_the_component_not_by_importing_it(
    isolated: Path,
):
    """Its module is outside the plugin's package: refused, yet the model loads, because
    building the backbone again (the plugin's own code) imports the library."""
    write(isolated / "lib" / "extlib" / "__init__.py", "")
    write(isolated / "lib" / "extlib" / "layers.py", LIBRARY_LAYERS)
    write(isolated / "project" / "library_plugin.py", LIBRARY_PLUGIN)
    write(isolated / "project" / "registry.toml", '[plugins]\nload = ["library_plugin.py"]\n')
    env = {"PYTHONPATH": str(isolated / "lib")}
    project = isolated / "project"
    trained = run_zoo(
        "run", "shapes", "doubling", "gap_sigmoid", *TINY_RUN, "--json", cwd=project, env=env
    )
    assert trained.exit_code == 0, trained.stderr
    Image.new("RGB", (40, 40)).save(project / "img.png")

    result = run_zoo("predict", trained.json()["run_dir"], "img.png", cwd=project, env=env)

    assert result.exit_code == 0, result.stderr
    manifest = json.loads(
        zipfile.ZipFile(project / trained.json()["run_dir"] / "model.keras").read("zoo.json")
    )
    assert [o["module"] for o in manifest["keras_objects"]] == ["extlib.layers"]


# --- Models saved before the built-in plugins moved into zoo.builtins ----------------------

#: Keras objects as an older zoo recorded them: its layers under ``zoo.layers``, and a
#: built-in plugin's class under ``zoo_plugins.<name>`` (built-ins were imported by path).
OLD_OBJECTS = [
    {"name": "zoo>Preprocess", "module": "zoo.layers", "qualname": "Preprocess"},
    {"name": "zoo>Preprocess", "module": "zoo_plugins.small_cnn", "qualname": "Preprocess"},
]


def with_old_objects(manifest: dict[str, Any]) -> None:
    manifest["keras_objects"] += [{**o, "component": "backbone"} for o in OLD_OBJECTS]


def test_old_module_names_are_read_as_where_the_modules_are_now(run_dir: Path):
    model = run_dir / "model.keras"
    rewrite_manifest(model, with_old_objects)

    objects = read_archive(model).manifest.keras_objects

    assert [o.module for o in objects][-2:] == ["zoo.model.layers", "zoo.builtins.small_cnn"]


def test_a_model_naming_the_old_built_in_modules_opens_in_a_new_process(
    run_dir: Path, isolated: Path
):
    rewrite_manifest(run_dir / "model.keras", with_old_objects)

    result = open_model("predict", run_dir, cwd=isolated)

    assert result.exit_code == 0, result.stderr[-3000:]
    assert "names the module" not in result.stderr


def test_an_old_built_in_module_name_does_not_reach_a_planted_zoo_plugins_package(
    run_dir: Path, isolated: Path
):
    """``zoo_plugins.payload`` is read as ``zoo.builtins.payload``, which zoo has not."""
    write(isolated / "zoo_plugins" / "__init__.py", "")
    write(isolated / "zoo_plugins" / "payload.py", PAYLOAD)
    rewrite_manifest(run_dir / "model.keras", name_module("zoo_plugins.payload"))

    result = open_model("predict", run_dir, cwd=isolated)

    assert_refused(result, "zoo.builtins.payload", "small_cnn", isolated)


def test_a_built_in_plugin_owns_zoo_builtins_and_nothing_else():
    import zoo
    from zoo.results.keras_classes import PluginPackage, _refused

    registry = zoo.load_registry(zoo.LoadOptions(builtins_only=True))
    assert registry.plugin_manager is not None
    own = PluginPackage.of(registry.plugin_manager.get_plugin("small_cnn"))

    assert own is not None and own.prefix == "zoo.builtins"
    assert _refused("zoo.builtins.heads", [own]) is None  # a fellow built-in's module
    assert "no such module" in (_refused("zoo.builtins.payload", [own]) or "")
    assert "not a module of that plugin's package" in (_refused("zoo_plugins.heads", [own]) or "")


# --- Tampered fields -----------------------------------------------------------------------


def setting(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(manifest: dict[str, Any]) -> None:
        manifest[field] = value

    return change


def component_kind(manifest: dict[str, Any]) -> None:
    manifest["components"]["gadget"] = dict(manifest["components"]["backbone"])


def component_name(manifest: dict[str, Any]) -> None:
    manifest["components"]["backbone"]["name"] = ["small_cnn"]


def object_component(manifest: dict[str, Any]) -> None:
    manifest["keras_objects"].append({"name": "x>Y", "module": None, "component": "gadget"})


def object_module(manifest: dict[str, Any]) -> None:
    manifest["keras_objects"].append({"name": "x>Y", "module": "os; rm", "component": "head"})


TAMPERED = {
    "image_size zero": ("image_size", setting("image_size", 0)),
    "image_size negative": ("image_size", setting("image_size", -32)),
    "image_size text": ("image_size", setting("image_size", "32")),
    "image_size fraction": ("image_size", setting("image_size", 32.5)),
    "image_size true": ("image_size", setting("image_size", True)),
    "class_names text": ("class_names", setting("class_names", "circle,square")),
    "class_names numbers": ("class_names[0]", setting("class_names", [1, 2])),
    "output": ("output", setting("output", "relu")),
    "components list": ("components", setting("components", ["dataset", "backbone", "head"])),
    "component kind": ("components.gadget", component_kind),
    "component name": ("components.backbone.name", component_name),
    "keras_objects object": ("keras_objects", setting("keras_objects", {"name": "x"})),
    "keras_objects element": ("keras_objects[0]", setting("keras_objects", ["this"])),
    "keras_objects component": ("keras_objects[0].component", object_component),
    "keras_objects module": ("keras_objects[0].module", object_module),
    "requires text": ("requires", setting("requires", "keras-hub")),
    "requires number": ("requires[0]", setting("requires", [3])),
    "requires control": ("requires[0]", setting("requires", ["keras-hub\x1b[2J"])),
}


def test_a_tampered_manifest_is_exit_2_naming_the_field(run_dir: Path, isolated: Path):
    field, change = TAMPERED["image_size zero"]
    rewrite_manifest(run_dir / "model.keras", change)

    result = run_zoo("predict", str(run_dir), "img.png", cwd=isolated)

    assert result.exit_code == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert f"zoo.json in {run_dir / 'model.keras'}: field {field} is" in message
    assert "train the run again, or get the original file" in message


@pytest.mark.parametrize("case", TAMPERED)
def test_each_tampered_field_is_named(run_dir: Path, case: str):
    """The reader ``zoo predict`` uses above, on every field, in this process."""
    field, change = TAMPERED[case]
    model = run_dir / "model.keras"
    rewrite_manifest(model, change)

    with pytest.raises(ZooError) as raised:
        read_archive(model)

    assert raised.value.what.startswith(f"zoo.json in {model}: field {field} is")
    assert "train the run again, or get the original file" in (raised.value.fix or "")


def test_a_manifest_that_is_not_json_is_an_error(run_dir: Path, isolated: Path):
    model = run_dir / "model.keras"
    with zipfile.ZipFile(model) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    replace_members(model, {**members, "zoo.json": b"{'class_names': ['circle'"})

    result = run_zoo("predict", str(run_dir), "img.png", cwd=isolated)

    assert result.exit_code == 2, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    assert f"zoo.json in {model} is not JSON" in message
    assert "Traceback" not in result.stderr


def test_a_huge_manifest_is_refused_before_it_is_read(run_dir: Path, isolated: Path):
    """64 MB of spaces, a few kilobytes compressed: zoo reads none of it."""
    rewrite_manifest(run_dir / "model.keras", lambda m: m.update(padding=" " * 64_000_000))

    result = run_zoo("predict", str(run_dir), "img.png", cwd=isolated)

    assert result.exit_code == 2, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    assert f"zoo.json in {run_dir / 'model.keras'} is 64,0" in message
    assert "Traceback" not in result.stderr


# --- Keras's safe mode ---------------------------------------------------------------------


def test_a_lambda_in_the_model_is_refused_not_run(trained: Path, isolated: Path):
    """Keras stores a Lambda layer's function as bytecode; safe_mode refuses to load it."""
    import keras

    from zoo.results.manifest import Manifest
    from zoo.results.saving import read_archive, save_model

    marker = isolated / "lambda-ran"
    run = eval(f"lambda x: x * float(__import__('pathlib').Path({str(marker)!r}).write_text('1'))")
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Lambda(run),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    manifest = read_archive(trained / "model.keras").manifest
    assert isinstance(manifest, Manifest)
    save_model(model, isolated / "lambda.keras", manifest)
    marker.unlink()  # building the model ran it once, here

    result = run_process([sys.executable, "-c", LOAD_MODEL, "lambda.keras"], cwd=isolated)

    assert not marker.exists(), "the model's lambda ran"
    assert result.exit_code == 2, result.stderr[-3000:]
    assert "lambda" in result.stderr.lower()


def test_python_m_zoo_finds_no_plugin_planted_in_the_current_folder(isolated: Path):
    """``python -m`` puts the current folder on the import path; zoo takes it off, so a
    ``*.dist-info`` planted there (in a run directory someone sent) is no plugin."""
    write(isolated / "planted-1.0.dist-info" / "METADATA", "Name: planted\nVersion: 1.0\n")
    write(isolated / "planted-1.0.dist-info" / "entry_points.txt", "[zoo]\nplanted = payload\n")
    marker = isolated / "payload-ran"
    write(isolated / "payload.py", f"open({str(marker)!r}, 'w').close()\n")

    result = run_process([sys.executable, "-m", "zoo", "plugins", "--json"], cwd=isolated)

    assert result.exit_code == 0, result.stderr
    assert not marker.exists()
    assert "planted" not in [plugin["name"] for plugin in result.json()]
