"""Reload anywhere: every run predicts and exports in a new process, whoever built it.

Each built-in and example component is trained here (the earlier process), then used by
the ``zoo`` script in new processes: ``zoo predict`` on a 227x100 picture, ``zoo export``
in both formats; and the exports are used by a plain Python process that never imports
zoo, as a deployment engineer would, on the same picture at its own size. All must give
the probabilities this process predicts.

One Keras Applications backbone stands for the family: every row of
``plugins/keras_applications.py`` goes through the same builder, the networks are
Keras's own classes (which Keras always finds), and what differs per row, the
preprocessing mode, is checked per mode in ``tests/test_layers.py``. ResNet50 is the
tutorial's, and its mode, ``caffe``, is the one built of more than one layer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import TINY_RUN, Result, rewrite_manifest, run_zoo, write
from PIL import Image

import zoo

SETTINGS = {"epochs": 1, "image_size": 32, "batch_size": 8}
SHAPES = ["dataset.num_images=40", "dataset.min_size=24", "dataset.max_size=40"]
#: Runs that together hold every built-in and example component, with their ``--set``s.
RUNS: dict[str, tuple[list[str], list[str]]] = {
    "binary": (["shapes", "small_cnn", "gap_sigmoid"], SHAPES),
    "folder": (["image_folder", "shapes_cnn", "gap_softmax"], []),
    "resnet50": (["shapes", "resnet50", "gap_sigmoid"], [*SHAPES, "backbone.weights=none"]),
    "example": (["gratings", "separable_cnn", "attention_pool"], SHAPES),
}
#: Each component, and the run it is tested in.
COMPONENTS = {name: run for run, (names, _) in RUNS.items() for name in names}
#: A picture of another size than the training size (32x32), as the issue's 227x100.
ODD_SIZE = (227, 100)

#: Uses both exports as a deployment engineer would: Keras and TensorFlow, no zoo. The
#: .keras file's zoo.json names the modules of a plugin's own classes to import.
PLAIN = """
import importlib, json, sys, zipfile
import keras, numpy as np, tensorflow as tf
from PIL import Image

keras_file, saved_model, picture = sys.argv[1:]
manifest = json.loads(zipfile.ZipFile(keras_file).read("zoo.json"))
for obj in manifest["keras_objects"]:
    importlib.import_module(obj["module"])
model = keras.models.load_model(keras_file)
image = np.asarray(Image.open(picture).convert("RGB"))
outputs = model.predict_on_batch(image[None])
served = tf.saved_model.load(saved_model)
answer = served.signatures["serving_default"](images=tf.constant(image[None]))
print(json.dumps({
    "class_names": manifest["class_names"],
    "keras": outputs[0].tolist(),
    "served": answer["probabilities"][0].numpy().tolist(),
    "served_class": answer["class"][0].numpy().decode(),
    "served_names": [n.decode() for n in served.signatures["class_names"]()["class_names"].numpy()],
    "zoo_imported": sorted(m for m in sys.modules if m.split(".")[0] == "zoo"),
}))
"""


@dataclass
class Reloaded:
    """A run, what this process predicts with it, and what new processes did with it."""

    run_dir: Path
    expected: dict[str, float]
    predicted: Result
    exported: dict[str, Result]
    plain: dict[str, Any]


def train(output: Path, names: list[str], sets: list[str]) -> Path:
    registry = zoo.load_registry()
    resolved = zoo.resolve_run(registry, names, settings=SETTINGS, sets=sets)
    run_dir = zoo.run(resolved, output=output).run_dir
    assert run_dir is not None
    return run_dir


def shape_folder(folder: Path) -> Path:
    """Twelve drawn shapes per class in circle/, square/, triangle/."""
    draw = sys.modules["zoo.builtins.shapes"].draw
    rng = np.random.default_rng(0)
    for shape in ("circle", "square", "triangle"):
        (folder / shape).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(draw(rng, shape, 24, 40, 8.0)).save(folder / shape / f"{i}.png")
    return folder


def by_class(class_names: list[str], outputs: list[float]) -> dict[str, float]:
    """Probabilities by class from a model's output (one sigmoid output: the second's)."""
    if len(outputs) == 1:
        outputs = [1.0 - outputs[0], outputs[0]]
    return dict(zip(class_names, outputs, strict=True))


def predicted_here(run_dir: Path, picture: Path) -> dict[str, float]:
    from zoo.results.predict import load_trained, predict_files

    trained = load_trained(run_dir)
    [entry] = predict_files(trained, [picture], top_k=99, batch_size=1).predicted
    return {t["class"]: t["probability"] for t in entry["top_k"]}


def reload(folder: Path, names: list[str], sets: list[str]) -> Reloaded:
    zoo.load_registry()  # imports zoo.builtins.shapes, whose draw makes the pictures
    if "image_folder" in names:
        sets = [*sets, f"dataset.path={shape_folder(folder / 'shapes')}"]
    run_dir = train(folder / "runs", names, sets)
    picture = folder / "odd.png"
    draw = sys.modules["zoo.builtins.shapes"].draw
    square = Image.fromarray(draw(np.random.default_rng(1), "square", 60, 100, 8.0))
    square.resize(ODD_SIZE).save(picture)

    predicted = run_zoo("predict", str(run_dir), str(picture), "--json")
    keras_file, saved_model = folder / "model.keras", folder / "served"
    exported = {
        "keras": run_zoo("export", str(run_dir), "--output", str(keras_file)),
        "savedmodel": run_zoo(
            "export", str(run_dir), "--format", "savedmodel", "--output", str(saved_model)
        ),
    }
    plain = subprocess.run(
        [sys.executable, "-c", PLAIN, str(keras_file), str(saved_model), str(picture)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert plain.returncode == 0, plain.stderr[-3000:]
    return Reloaded(
        run_dir=run_dir,
        expected=predicted_here(run_dir, picture),
        predicted=predicted,
        exported=exported,
        plain=json.loads(plain.stdout),
    )


@pytest.fixture(scope="module")
def reloaded(tmp_path_factory) -> Callable[[str], Reloaded]:
    """Each run of ``RUNS``, trained and reloaded once, on first use."""
    done: dict[str, Reloaded] = {}

    def get(run: str) -> Reloaded:
        if run not in done:
            done[run] = reload(tmp_path_factory.mktemp(run), *RUNS[run])
        return done[run]

    return get


@pytest.mark.parametrize("component", COMPONENTS)
def test_a_run_predicts_and_exports_in_new_processes(reloaded, component: str):
    result = reloaded(COMPONENTS[component])

    assert result.predicted.exit_code == 0, result.predicted.stderr
    [prediction] = result.predicted.json()["predictions"]
    predicted = {t["class"]: t["probability"] for t in prediction["top_k"]}
    assert predicted == pytest.approx(result.expected, abs=1e-6)
    for fmt, exported in result.exported.items():
        assert exported.exit_code == 0, f"{fmt}: {exported.stderr}"
    plain = result.plain
    assert plain["zoo_imported"] == []
    names = plain["class_names"]
    assert names == plain["served_names"] == list(result.expected)
    assert by_class(names, plain["keras"]) == pytest.approx(result.expected, abs=1e-5)
    assert by_class(names, plain["served"]) == pytest.approx(result.expected, abs=1e-5)
    assert plain["served_class"] == prediction["class"]


#: A new process evaluates a run's model on its test split, as the run evaluated it.
EVALUATE = """
import json, sys
from pathlib import Path
import numpy as np
import zoo
from zoo.data import pipeline
from zoo.model.assemble import build_splits
from zoo.runconfig import resolve_saved

run_dir = Path(sys.argv[1])
model = zoo.load_model(run_dir)
config = json.loads((run_dir / "config.json").read_text())
resolved = resolve_saved(zoo.load_registry(), config)
test = pipeline.batches(build_splits(resolved).test, image_size=32, batch_size=8)
right = [
    int(np.sum(np.argmax(model.predict_on_batch(images), axis=-1) == labels.numpy()))
    for images, labels in test
]
print(json.dumps({"accuracy": sum(right) / sum(len(b[1]) for b in test)}))
"""


def test_a_new_process_evaluates_a_run_as_the_run_did(reloaded):
    run_dir = reloaded("example").run_dir

    proc = subprocess.run(
        [sys.executable, "-c", EVALUATE, str(run_dir)], capture_output=True, text=True, timeout=600
    )

    assert proc.returncode == 0, proc.stderr[-3000:]
    recorded = json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"]
    assert json.loads(proc.stdout.splitlines()[-1])["accuracy"] == pytest.approx(recorded)


# --- When a plugin is missing or changed, or the file is damaged -----------------------


def damaged_copy(run_dir: Path, folder: Path) -> Path:
    copy = folder / run_dir.name
    shutil.copytree(run_dir, copy)
    return copy


def test_a_missing_plugin_is_named_with_the_package_and_version_that_trained(
    reloaded, isolated: Path
):
    run_dir = reloaded("example").run_dir
    picture = isolated / "square.png"
    Image.new("RGB", (40, 40)).save(picture)

    result = run_zoo("predict", str(run_dir), str(picture), env={"ZOO_DISABLE_PLUGINS": "example"})

    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "'zoo_plugin_example>AttentionPooling'" in message
    assert "head 'attention_pool' that plugin 'example' (zoo-plugin-example 0.1.0) built" in message
    assert "that plugin is disabled" in message
    assert "pip install 'zoo-plugin-example==0.1.0'" in message


def test_another_plugin_version_is_named_when_the_model_does_not_load(reloaded, isolated: Path):
    run_dir = damaged_copy(reloaded("example").run_dir, isolated)

    def from_an_older_version(manifest: dict[str, Any]) -> None:
        manifest["components"]["head"]["version"] = "0.0.9"
        manifest["keras_objects"][0]["name"] = "zoo_plugin_example>AttentionPoolingV0"

    rewrite_manifest(run_dir / "model.keras", from_an_older_version)

    result = run_zoo("export", str(run_dir), "--output", str(isolated / "out.keras"))

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "'zoo_plugin_example>AttentionPoolingV0'" in message
    assert "plugin 'example' (zoo-plugin-example 0.0.9) built" in message
    assert "that plugin is zoo-plugin-example 0.1.0 now" in message
    assert "pip install 'zoo-plugin-example==0.0.9'" in message
    assert not (isolated / "out.keras").exists()


def test_another_plugin_version_that_loads_is_a_warning(reloaded, isolated: Path):
    run_dir = damaged_copy(reloaded("example").run_dir, isolated)
    rewrite_manifest(
        run_dir / "model.keras",
        lambda manifest: manifest["components"]["head"].update(version="0.0.9"),
    )
    Image.new("RGB", (40, 40)).save(isolated / "black.png")

    result = run_zoo("predict", str(run_dir), str(isolated / "black.png"), "--json")

    assert result.exit_code == 0, result.stderr
    assert (
        "warning: the head 'attention_pool' was built by plugin 'example' (zoo-plugin-example "
        "0.0.9); the plugin is zoo-plugin-example 0.1.0 now" in " ".join(result.stderr.split())
    )


@pytest.mark.parametrize("command", ["predict", "export"])
def test_a_truncated_model_file_is_reported_as_damaged_not_as_a_missing_plugin(
    reloaded, isolated: Path, command: str
):
    run_dir = damaged_copy(reloaded("example").run_dir, isolated)
    model = run_dir / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    Image.new("RGB", (40, 40)).save(isolated / "black.png")
    args = ["black.png"] if command == "predict" else ["--output", "out.keras"]

    result = run_zoo(command, str(run_dir), *args, cwd=isolated)

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert f"{model} is damaged: it is not a complete Keras model file" in message
    assert "it may be truncated" in message
    assert "plugin" not in message and "Traceback" not in message


# --- Runs saved before the manifest --------------------------------------------------------

#: Written by zoo at commit 71d2dde: no zoo.json, and zoo's own Preprocess layer.
LEGACY = Path(__file__).parent / "data" / "run-without-manifest"


def test_a_run_saved_before_manifests_predicts_as_it_did_and_exports_for_plain_keras(
    isolated: Path,
):
    """Its model.keras holds zoo's own Preprocess layer, read back as built-in layers."""
    then = json.loads((LEGACY / "predicted.json").read_text())

    predicted = run_zoo("predict", str(LEGACY), str(LEGACY / then["file"]), "--json")
    exported = run_zoo("export", str(LEGACY), "--output", str(isolated / "m.keras"))
    loads = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, zipfile, keras; "
            "model = keras.models.load_model(sys.argv[1]); "
            "trained = model.layers[-1]; "  # behind the export's Resizing layer
            "print(json.dumps([type(layer).__name__ for layer in trained.layers] + "
            "json.loads(zipfile.ZipFile(sys.argv[1]).read('zoo.json'))['class_names']))",
            str(isolated / "m.keras"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert predicted.exit_code == 0, predicted.stderr
    [prediction] = predicted.json()["predictions"]
    now = {t["class"]: t["probability"] for t in prediction["top_k"]}
    assert now == pytest.approx(then["probabilities"], abs=1e-6)
    assert exported.exit_code == 0, exported.stderr
    assert loads.returncode == 0, loads.stderr[-2000:]
    assert json.loads(loads.stdout) == [
        "InputLayer", "Rescaling", "Sequential", "Functional", "circle", "square"
    ]  # fmt: skip


# --- Plugins written to the guide: layers imported by builders, or defined in them -------

LAYERS = """
import keras


@keras.saving.register_keras_serializable(package="guide")
class Doubling(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


class Tripling(keras.layers.Layer):
    \"\"\"Not decorated: only the register_keras_objects hook tells zoo about it.\"\"\"

    def call(self, x):
        return x * 3.0
"""

GUIDE_PLUGIN = """
import zoo


def build_backbone(image_shape, params):
    import keras

    from . import guide_layers  # only the builder imports the layers' module

    model = keras.Sequential(
        [keras.Input(image_shape), keras.layers.Conv2D(4, 3), guide_layers.Doubling()]
    )
    return zoo.BuiltBackbone(model=model, preprocessing="unit")


def build_head(features, num_classes, params):
    import keras

    @keras.saving.register_keras_serializable(package="guide")
    class Halving(keras.layers.Layer):  # defined inside the builder
        def call(self, x):
            return x * 0.5

    x = keras.layers.GlobalAveragePooling2D()(Halving()(features))
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return zoo.BuiltHead(outputs=outputs, loss="sparse_categorical_crossentropy")


def build_hooked_head(features, num_classes, params):
    import keras

    from . import guide_layers

    x = keras.layers.GlobalAveragePooling2D()(guide_layers.Tripling()(features))
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return zoo.BuiltHead(outputs=outputs, loss="sparse_categorical_crossentropy")


@zoo.hookimpl
def register_backbones(register):
    register(zoo.Backbone(name="doubling_cnn", description="Conv + Doubling", build=build_backbone))


@zoo.hookimpl
def register_heads(register):
    register(zoo.Head(name="halving_head", description="Halving + GAP + Dense", build=build_head))
    register(zoo.Head(name="tripling_head", description="Tripling + GAP", build=build_hooked_head))
"""

HOOK = """

@zoo.hookimpl
def register_keras_objects(register):
    from .guide_layers import Tripling

    register(Tripling)
"""


def guide_plugin(folder: Path, hook: bool = True) -> None:
    write(folder / "guide_layers.py", LAYERS)
    write(folder / "guide_plugin.py", GUIDE_PLUGIN + (HOOK if hook else ""))
    write(folder / "registry.toml", '[plugins]\nload = ["guide_plugin.py"]\n')


def train_with_guide_plugin(zoo_cli, head: str) -> Path:
    result = zoo_cli("run", "shapes", "doubling_cnn", head, *TINY_RUN, "--json")
    assert result.exit_code == 0, result.stderr
    return Path(result.json()["run_dir"])


def test_classes_imported_by_a_builder_or_defined_in_one_load_in_a_new_process(
    zoo_cli, isolated: Path
):
    guide_plugin(isolated)
    run_dir = train_with_guide_plugin(zoo_cli, "halving_head")
    Image.new("RGB", (50, 30), (200, 40, 40)).save(isolated / "red.png")
    expected = predicted_here(run_dir, isolated / "red.png")

    predicted = run_zoo("predict", str(run_dir), "red.png", "--json", cwd=isolated)
    exported = run_zoo("export", str(run_dir), "--format", "savedmodel", "--output", "sm")

    assert predicted.exit_code == 0, predicted.stderr
    [prediction] = predicted.json()["predictions"]
    assert {t["class"]: t["probability"] for t in prediction["top_k"]} == pytest.approx(
        expected, abs=1e-6
    )
    assert exported.exit_code == 0, exported.stderr
    manifest = json.loads(zipfile.ZipFile(run_dir / "model.keras").read("zoo.json"))
    assert [
        (o["name"], o["module"], o["qualname"], o["component"]) for o in manifest["keras_objects"]
    ] == [
        ("guide>Doubling", "zoo_local_plugins.guide_layers", "Doubling", "backbone"),
        ("guide>Halving", "zoo_local_plugins.guide_plugin", "build_head.<locals>.Halving", "head"),
    ]


def test_hook_register_keras_objects(zoo_cli, isolated: Path):
    """An undecorated class loads when the plugin declares it; without the hook it cannot."""
    guide_plugin(isolated)
    run_dir = train_with_guide_plugin(zoo_cli, "tripling_head")
    Image.new("RGB", (50, 30), (200, 40, 40)).save(isolated / "red.png")

    declared = run_zoo("predict", str(run_dir), "red.png", cwd=isolated)
    guide_plugin(isolated, hook=False)
    undeclared = run_zoo("predict", str(run_dir), "red.png", cwd=isolated)

    assert declared.exit_code == 0, declared.stderr
    assert undeclared.exit_code == 2
    message = " ".join(undeclared.stderr.split())
    assert "'Tripling' (zoo_local_plugins.guide_layers), of the head 'tripling_head'" in message
    assert "that plugin does not register them any more" in message
    assert "run zoo from the folder whose registry.toml lists it" in message
