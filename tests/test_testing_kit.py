"""zoo.testing, the contract kit: zoo's own components pass it, broken ones are caught.

The kit's report on a plugin full of broken components is computed once; each test
then looks for one problem in it, so a test reads like the rule it checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import zoo
from zoo.plugins import LoadOptions, load_registry
from zoo.testing import ContractError, Report, check_components, check_plugin

BUILTINS = load_registry(LoadOptions(builtins_only=True))
#: Parameters that make each built-in quick to build: tiny data, no weight downloads.
TINY: dict[str, dict[str, Any]] = {
    "shapes": {"num_images": 40, "min_size": 24, "max_size": 40},
    "resnet50": {"weights": "none"},
}
#: Not built, their entries still checked. TFDS datasets and KerasHub presets need a
#: download (tests/test_keras_hub.py checks the plugin on tiny presets). Building all
#: 13 Keras Applications backbones (weights=none, at their minimum size) took 13.5 s
#: on 2 cores; resnet50, the tutorial's (0.8 s), stands for the family, whose own
#: tests build each one.
NOT_BUILT = {
    e.name
    for e in BUILTINS
    if e.plugin.name in ("tfds_datasets", "keras_applications", "keras_hub")
    and e.name != "resnet50"
}


def pet_images(folder: Path) -> Path:
    """Ten tiny PNGs per class in Cat/ and Dog/, enough for a 10% validation and test."""
    from PIL import Image

    for label, colour in (("Cat", (200, 120, 40)), ("Dog", (40, 90, 200))):
        (folder / label).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (12 + i, 10), colour).save(folder / label / f"{i}.png")
    return folder


@pytest.mark.parametrize("entry", list(BUILTINS), ids=lambda e: e.qualified_name)
def test_every_builtin_component_keeps_its_contract(entry: zoo.Entry, tmp_path):
    params = TINY.get(entry.name, {})
    if entry.name == "image_folder":
        params = {"path": str(pet_images(tmp_path / "PetImages"))}

    report = check_components([entry], params={entry.name: params}, skip=NOT_BUILT, image_size=1)

    assert report.ok, str(report)


# --- A plugin full of mistakes ------------------------------------------------------


def splits(images: Any = None, labels: Any = (0, 1, 0, 1), **changes: Any) -> zoo.Splits:
    """Four 8x8 uint8 images per split, two classes; ``changes`` breaks one thing."""
    import numpy as np
    import tensorflow as tf

    if images is None:
        images = np.zeros((len(labels), 8, 8, 3), "uint8")
    data = tf.data.Dataset.from_tensor_slices((images, np.array(labels)))
    fields = {
        "train": data,
        "validation": data,
        "test": data,
        "class_names": ["a", "b"],
        "sizes": dict.fromkeys(("train", "validation", "test"), len(labels)),
    }
    return zoo.Splits(**(fields | changes))


def empty_test_split(params):
    import tensorflow as tf

    nothing = tf.data.Dataset.from_tensor_slices((tf.zeros((0, 8, 8, 3), tf.uint8), [0][:0]))
    return splits(test=nothing.map(lambda x, y: (x, tf.cast(y, tf.int64))))


def backbone(image_shape, params, *layers, trainable=True):
    import keras

    model = keras.Sequential([keras.Input(image_shape), *layers, keras.layers.Flatten()])
    model.trainable = trainable
    return zoo.BuiltBackbone(model=model, preprocessing="unit")


def head(features, num_classes, params, width=None, loss="sparse_categorical_crossentropy"):
    import keras

    x = keras.layers.Flatten()(features)
    outputs = keras.layers.Dense(width or num_classes, activation="softmax")(x)
    return zoo.BuiltHead(outputs=outputs, loss=loss)


def pooled_head(features, num_classes, params, before=None, skip=False):
    """A head that declares its global pooling; ``before`` and ``skip`` break the promise."""
    import keras

    x = before()(features) if before else features
    pool = {4: keras.layers.GlobalAveragePooling2D, 3: keras.layers.GlobalAveragePooling1D}
    pooled = pool[len(x.shape)]()(x) if len(x.shape) in pool else None
    vector = x if pooled is None else pooled
    if skip:  # the features reach the output past the pooling too
        vector = keras.layers.Concatenate()([vector, keras.layers.Flatten()(features)])
    outputs = keras.layers.Dense(num_classes, activation="softmax")(vector)
    return zoo.BuiltHead(outputs, "sparse_categorical_crossentropy", pooled=pooled)


def refuse(features, num_classes, params):
    raise zoo.ZooError("this head takes nothing")


def nan_dense():
    import keras

    return keras.layers.Dense(4, kernel_initializer=keras.initializers.Constant(float("nan")))


def dense():
    import keras

    return keras.layers.Dense(8)


def dropout():
    import keras

    return keras.layers.Dropout(0.5)


def too_big_conv():
    import keras

    return keras.layers.Conv2D(4, 5)


def dataset(name, build, **fields):
    return zoo.Dataset(name=name, description="a test dataset", build=build, **fields)


class Flawed:
    """Every component but the ``fine_*`` ones breaks one promise."""

    @staticmethod
    @zoo.hookimpl
    def register_datasets(register):
        for entry in (
            dataset("fine_dataset", lambda p: splits()),
            dataset("labels_out_of_range", lambda p: splits(labels=(0, 5, 1, 7))),
            dataset("float_images", lambda p: splits(images=[[[[0.5] * 3]]] * 4)),
            dataset("batched", lambda p: splits(train=splits().train.batch(2))),
            dataset("empty_test", empty_test_split),
            dataset("wrong_sizes", lambda p: splits(sizes={"train": 10})),
            dataset("same_names", lambda p: splits(class_names=["a", "a"])),
            dataset("not_splits", lambda p: {"train": []}),
            dataset("disagrees", lambda p: splits(), class_names=lambda p: ["x", "y"]),
            dataset(
                "needs_path", lambda p: splits(), params=[zoo.Param("path", str, required=True)]
            ),
            dataset(
                "no_defaults", lambda p: splits(), params=[zoo.Param("size", int, help="size")]
            ),
            dataset(
                "fine_optional_path",
                lambda p: splits(),
                params=[zoo.Param("cache", str, None, "a folder to cache in (default: none)")],
            ),
        ):
            register(entry)

    @staticmethod
    @zoo.hookimpl
    def register_backbones(register):
        for name, build, min_size, params in (
            ("fine_backbone", backbone, 4, ()),
            ("returns_model", lambda s, p: backbone(s, p).model, 4, ()),
            ("too_small", lambda s, p: backbone(s, p, too_big_conv()), 1, ()),
            ("nan_features", lambda s, p: backbone(s, p, nan_dense()), 4, ()),
            (
                "ignores_trainable",
                lambda s, p: backbone(s, p, trainable=True),
                4,
                [zoo.Param("trainable", bool, False, "freeze it")],
            ),
        ):
            register(
                zoo.Backbone(
                    name=name, description="b", build=build, min_image_size=min_size, params=params
                )
            )

    @staticmethod
    @zoo.hookimpl
    def register_heads(register):
        for name, build, description in (
            ("fine_head", head, "h"),
            ("too_wide", lambda f, n, p: head(f, n, p, width=n + 1), "h"),
            ("bad_loss", lambda f, n, p: head(f, n, p, loss="no_such_loss"), "h"),
            ("returns_tensor", lambda f, n, p: head(f, n, p).outputs, "h"),
            ("refuses_all", refuse, "h"),
            ("gap_sigmoid", head, "h"),
            ("undescribed", head, " "),
            ("fine_pooled_head", pooled_head, "h"),
            ("pools_after_weights", lambda f, n, p: pooled_head(f, n, p, before=dense), "h"),
            ("pools_after_dropout", lambda f, n, p: pooled_head(f, n, p, before=dropout), "h"),
            ("pools_but_skips", lambda f, n, p: pooled_head(f, n, p, skip=True), "h"),
        ):
            register(zoo.Head(name=name, description=description, build=build))


@pytest.fixture(scope="module")
def report() -> Report:
    with pytest.raises(ContractError) as info:
        check_plugin(Flawed, params={"needs_pth": {"path": "x"}}, image_size=8)
    return info.value.report


MAP = "features [4, 4, 8] with 2 classes"


@pytest.mark.parametrize(
    ("component", "check", "complaint"),
    [
        ("dataset Flawed:labels_out_of_range", "train", "has labels [5, 7] outside 0..1"),
        ("dataset Flawed:float_images", "train", "float32 images, not uint8"),
        ("dataset Flawed:batched", "train", "not [height, width, 3] (unbatched)"),
        ("dataset Flawed:empty_test", "test", "is empty"),
        ("dataset Flawed:wrong_sizes", "sizes", "says 'train' has 10 examples; it has 4"),
        ("dataset Flawed:wrong_sizes", "sizes", "has no entry for 'test'"),
        ("dataset Flawed:same_names", "class_names", "must be distinct non-empty strings"),
        ("dataset Flawed:not_splits", "build", "returned dict, not zoo.Splits"),
        ("dataset Flawed:disagrees", "class_names", "class_names(params) gives ['x', 'y']"),
        ("dataset Flawed:needs_path", "params", "needs a value for: path"),
        ("dataset Flawed:no_defaults", "params", "'size' has no default"),
        ("backbone Flawed:returns_model", "build at 8x8", "not zoo.BuiltBackbone"),
        ("backbone Flawed:too_small", "build at 1x1", "raised ValueError"),
        ("backbone Flawed:nan_features", "output at 8x8", "must be finite floats"),
        ("backbone Flawed:ignores_trainable", "trainable", "the parameter is False"),
        ("head Flawed:too_wide", "output on features [4, 4, 8] with 2 classes", "(None, 2)"),
        ("head Flawed:bad_loss", "training step on features [8] with 3 classes", "raised"),
        ("head Flawed:returns_tensor", "build on features [8] with 3 classes", "BuiltHead"),
        ("head Flawed:refuses_all", "build", "refused every feature shape tried"),
        ("head Flawed:gap_sigmoid", "name", "plugin 'heads' (zoo 0.1.0) registers the same"),
        ("head Flawed:undescribed", "description", "must be one non-empty line"),
        ("head Flawed:pools_after_weights", f"pooled on {MAP}", "pooling before it holds weights"),
        ("head Flawed:pools_after_dropout", f"pooled on {MAP}", "random in training"),
        ("head Flawed:pools_but_skips", f"pooled on {MAP}", "other than through it"),
        ("needs_pth", "params", "names no component being checked"),
    ],
)
def test_the_kit_reports_each_broken_promise(report: Report, component, check, complaint):
    found = [p for p in report.problems if (p.component, p.check) == (component, check)]

    assert any(complaint in p.detail for p in found), str(report)


def test_the_kit_reports_everything_at_once_and_nothing_about_fine_components(report):
    assert len(report.checked) == 28
    assert len({p.component for p in report.problems}) == 24
    assert not [p for p in report.problems if ":fine_" in p.component]
    assert str(report).startswith(f"28 components checked: {len(report.problems)} problems\n")


def test_a_plugin_that_is_not_installed_is_a_problem_saying_how_to_install_it():
    with pytest.raises(ContractError, match=r"no plugin of that name is loaded.*pip install"):
        check_plugin("no_such_plugin")


def test_a_plugin_that_fails_to_load_is_a_problem_with_the_reason():
    class Misspelt:
        @staticmethod
        @zoo.hookimpl
        def register_head(register):
            pass

    with pytest.raises(ContractError, match="did you mean register_heads"):
        check_plugin(Misspelt)


def test_a_plugin_that_registers_nothing_is_a_problem():
    class Empty:
        @staticmethod
        @zoo.hookimpl
        def register_heads(register):
            pass

    with pytest.raises(ContractError, match="registers no dataset, backbone, head or observer"):
        check_plugin(Empty)


def test_a_component_not_built_is_not_asked_for_its_required_values():
    class NeedsTheNetwork:
        @staticmethod
        @zoo.hookimpl
        def register_datasets(register):
            name = zoo.Param("name", str, required=True, help="what to download")
            register(dataset("remote", lambda p: splits(), params=[name]))

    report = check_plugin(NeedsTheNetwork, skip={"remote"})

    assert (report.checked, report.skipped) == (["dataset NeedsTheNetwork:remote"],) * 2


# --- The round trip: saved here, loaded in a new process ---------------------------------

ROUND_TRIP_PLUGIN = """
import zoo


def build(features, num_classes, params):
    import keras

    {decorator}
    class Halving(keras.layers.Layer):  # defined inside the builder
        def call(self, x):
            return x * 0.5

    x = keras.layers.Flatten()(Halving()(features))
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return zoo.BuiltHead(outputs=outputs, loss="sparse_categorical_crossentropy")


@zoo.hookimpl
def register_heads(register):
    register(zoo.Head(name="halving", description="Halving + Flatten + Dense", build=build))
"""


def plugin_module(folder: Path, name: str, decorator: str) -> Any:
    """A plugin module loaded from its file, as the guide's examples are loaded."""
    import importlib.util

    path = folder / f"{name}.py"
    path.write_text(ROUND_TRIP_PLUGIN.replace("{decorator}", decorator))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_kit_loads_each_model_again_in_a_new_process(tmp_path: Path):
    plugin = plugin_module(
        tmp_path, "decorated", '@keras.saving.register_keras_serializable(package="kit")'
    )

    report = check_plugin(plugin)

    assert report.round_trips == ["head decorated:halving"]


def test_a_class_a_new_process_cannot_find_fails_the_round_trip(tmp_path: Path):
    plugin = plugin_module(tmp_path, "undecorated", "# not registered, and no hook declares it")

    with pytest.raises(ContractError) as info:
        check_plugin(plugin)

    [problem] = info.value.report.problems
    assert (problem.component, problem.check) == ("head undecorated:halving", "round trip")
    assert "loading in a new process failed" in problem.detail
    assert "'Halving' (undecorated), of the head 'halving'" in problem.detail
    assert info.value.report.round_trips == []


#: Prints what importing the module loaded of TensorFlow, Keras and zoo's build side.
IMPORTED = """
import sys
import {module}
heavy = ("tensorflow", "keras")
print(sorted(m for m in sys.modules
             if m.split(".")[0] in heavy or m.startswith(("zoo.train", "zoo.model"))))
"""


@pytest.mark.parametrize("module", ["zoo.testing", "zoo.testing.reload"])
def test_importing_the_kit_or_its_new_process_loads_no_tensorflow(module: str):
    """The kit loads TensorFlow once check_plugin knows whether to be verbose; the new
    process of the round trip imports what zoo predict imports, not the building side."""
    import subprocess
    import sys

    code = IMPORTED.format(module=module)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
