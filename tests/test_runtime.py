"""What computes frozen features and predictions: TensorFlow, or OpenVINO on the CPU.

OpenVINO is the ``[openvino]`` extra, which CI installs; the tests that run it are
skipped without it, and the tests of its absence hide it from a real ``zoo`` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_RUN, hide_openvino, run_zoo, write

import zoo
from zoo.plugins import load_registry
from zoo.runtime import conversion, patches, runners

needs_openvino = pytest.mark.skipif(
    runners.installed() is None, reason="needs OpenVINO: pip install 'zoo[openvino]'"
)
FROZEN_RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN]
FROZEN_RUN += ["--set", "backbone.trainable=false", "--json"]

#: A backbone whose model calls back into Python (``tf.numpy_function``), which no
#: converter can turn into a graph of its own.
HOST_CALLBACK_PLUGIN = """
import functools

import zoo


@functools.cache
def doubling():
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="test_host")
    class Doubling(keras.layers.Layer):
        def call(self, x):
            y = tf.numpy_function(lambda a: a * 2, [x], tf.float32)
            return tf.ensure_shape(y, x.shape)

    return Doubling


def build(image_shape, params):
    import keras

    model = keras.Sequential(
        [keras.Input(image_shape), doubling()(), keras.layers.Conv2D(4, 3)], name="host"
    )
    model.trainable = False
    return zoo.BuiltBackbone(model=model, preprocessing="unit", pretrained=True)


@zoo.hookimpl
def register_backbones(register):
    register(zoo.Backbone(name="host_callback", description="Calls Python", build=build))
"""


def relative_difference(found: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(found - expected).max() / np.abs(expected).max())


# --- Choosing -------------------------------------------------------------------------


def test_auto_picks_openvino_on_the_cpu_when_it_is_installed(monkeypatch):
    monkeypatch.setattr(runners, "installed", lambda: "2026.4.1")

    choice = runners.plan("auto")

    assert (choice.name, choice.precision, choice.version) == ("openvino", "float32", "2026.4.1")
    assert choice.describe() == (
        "runtime: openvino 2026.4.1, float32 "
        "(auto: OpenVINO is installed and the run is on the CPU)"
    )


def test_auto_keeps_tensorflow_on_a_gpu_and_without_openvino(monkeypatch):
    monkeypatch.setattr(runners, "installed", lambda: "2026.4.1")
    on_gpu = runners.plan("auto", "bfloat16", gpu=True)
    monkeypatch.setattr(runners, "installed", lambda: None)
    without = runners.plan("auto")

    assert (on_gpu.name, on_gpu.precision) == ("tensorflow", "float32")
    assert "GPU" in on_gpu.reason and "bfloat16 needs OpenVINO" in on_gpu.reason
    assert without.name == "tensorflow"
    assert "pip install 'zoo[openvino]'" in without.reason


def test_auto_keeps_tensorflow_for_too_few_images_to_repay_converting(monkeypatch):
    monkeypatch.setattr(runners, "installed", lambda: "2026.4.1")

    few = runners.plan("auto", images=runners.WORTH_CONVERTING - 1)
    enough = runners.plan("auto", images=runners.WORTH_CONVERTING)

    assert (few.name, enough.name) == ("tensorflow", "openvino")
    assert (
        few.reason == "999 images to run; below 1,000, converting to OpenVINO costs more "
        "time than it saves"
    )


def test_asking_for_what_cannot_run_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(runners, "installed", lambda: None)

    with pytest.raises(zoo.ZooError, match=r"openvino package, which is not installed"):
        runners.plan("openvino")
    with pytest.raises(zoo.ZooError, match="bfloat16 needs the OpenVINO runtime"):
        runners.plan("tensorflow", "bfloat16")


# --- Converting -----------------------------------------------------------------------


def assembled(names: list[str], size: int, sets: list[str]) -> zoo.Assembled:
    resolved = zoo.resolve_run(load_registry(), names, settings={"image_size": size}, sets=sets)
    return zoo.build_model(resolved, 2)


@needs_openvino
def test_openvino_features_are_tensorflows_within_1e_3_maps_and_pooled_vectors():
    model = assembled(["shapes", "small_cnn", "gap_sigmoid"], 32, [])
    images = np.random.default_rng(0).uniform(0, 255, (5, 32, 32, 3)).astype("float32")

    for features in (model.features, model.pooled.features):
        converted, choice = runners.compile_model(features, runners.plan("openvino"))

        assert choice.name == "openvino"
        expected = features.predict_on_batch(images)
        assert relative_difference(converted(images), expected) <= 1e-3
        assert relative_difference(converted(images[:2]), expected[:2]) <= 1e-3


@needs_openvino
def test_converting_finds_variables_by_index_with_features_bit_identical(monkeypatch):
    from openvino.frontend.tensorflow.node_decoder import TFGraphNodeDecoder

    features = assembled(["shapes", "small_cnn", "gap_sigmoid"], 32, []).features
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    walk = TFGraphNodeDecoder.__dict__["get_variable"].__func__
    walks: list[object] = []

    def counted_walk(operation: object) -> object:
        walks.append(operation)
        return walk(operation)

    monkeypatch.setattr(TFGraphNodeDecoder, "get_variable", staticmethod(counted_walk))
    indexed = runners.OpenVinoModel(features)(images)
    assert walks == []  # the index answered the converter
    assert TFGraphNodeDecoder.__dict__["get_variable"].__func__ is counted_walk  # put back

    monkeypatch.setenv("ZOO_NO_PATCHES", "1")  # the switch that turns every patch off
    walked = runners.OpenVinoModel(features)(images)
    assert walks  # the converter asks for variables: without the index, it walks
    np.testing.assert_array_equal(indexed, walked)


@needs_openvino
def test_a_model_of_any_image_size_runs_on_tensorflow_saying_why():
    import keras

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))

    runner, choice = runners.compile_model(model, runners.plan("openvino"))

    assert runner is None
    assert choice.name == "tensorflow"
    assert "is not fixed" in choice.reason


@needs_openvino
def test_converting_reads_each_variable_once(monkeypatch):
    from tensorflow.python.ops.resource_variable_ops import BaseResourceVariable

    features = assembled(["shapes", "small_cnn", "gap_sigmoid"], 32, []).features
    read = BaseResourceVariable.read_value_no_copy
    reads: list[int] = []

    def counted_read(variable: BaseResourceVariable) -> object:
        reads.append(id(variable))
        return read(variable)

    monkeypatch.setattr(BaseResourceVariable, "read_value_no_copy", counted_read)
    runners.OpenVinoModel(features)

    assert reads  # the converter reads the weights it makes constants of
    assert len(reads) == len(set(reads))  # it asks again for shapes: answered from memory


@needs_openvino
def test_the_graph_traced_without_autograph_converts_to_the_same_features(monkeypatch):
    features = assembled(["shapes", "small_cnn", "gap_sigmoid"], 32, []).pooled.features
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")

    traced = runners.OpenVinoModel(features)(images)
    # The Keras model itself, traced by the converter's own wrapper (AutoGraph on).
    monkeypatch.setattr(conversion, "traced", lambda model: model)
    wrapped = runners.OpenVinoModel(features)(images)

    np.testing.assert_array_equal(traced, wrapped)


@needs_openvino
def test_conversions_in_two_threads_put_openvinos_own_lookup_back():
    from openvino.frontend.tensorflow.node_decoder import TFGraphNodeDecoder

    walked = TFGraphNodeDecoder.__dict__["get_variable"]
    second_entered = threading.Event()

    def second() -> None:
        with patches.openvino_indexed():
            second_entered.set()

    with patches.openvino_indexed():
        thread = threading.Thread(target=second)
        thread.start()
        # Without waiting its turn, the second would enter now and keep the first's index.
        assert not second_entered.wait(0.2)
    thread.join(timeout=30)

    assert second_entered.is_set()
    assert TFGraphNodeDecoder.__dict__["get_variable"] is walked


#: Two converted models, dropped in the order they were made, then a Ctrl-C.
CTRL_C_AFTER_TWO_MODELS = """
import gc, os, signal
import keras
from zoo.runtime import runners

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
first = runners.OpenVinoModel(model)
second = runners.OpenVinoModel(model)
del first
gc.collect()
del second
gc.collect()
signal.signal(signal.SIGINT, signal.default_int_handler)
try:
    os.kill(os.getpid(), signal.SIGINT)
    signal.pause()
except KeyboardInterrupt:
    print("stopped cleanly")
"""


@needs_openvino
def test_a_ctrl_c_after_models_were_converted_stops_cleanly(isolated: Path):
    # OpenVINO's CPU plugin swaps the thread's signal stack per Core: with a Core per
    # model, this process died of a segmentation fault instead.
    proc = subprocess.run(
        [sys.executable, "-c", CTRL_C_AFTER_TWO_MODELS],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stopped cleanly" in proc.stdout


#: A conversion in a new process, after ``{first}``: how often the process forked
#: (OpenVINO's telemetry posts each event from a forked copy of it), the events the
#: converter asked OpenVINO's telemetry to send, which telemetry module it holds, and
#: whether OpenVINO's telemetry package was imported at all.
TELEMETRY_CHECK = """
import json, os, sys
import numpy as np
import keras

sent = []
{first}
forks = []
os.register_at_fork(before=lambda: forks.append(1))
from zoo.runtime import runners

converted = runners.OpenVinoModel(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
converted(np.zeros((3, 4), "float32"))
from openvino.tools.ovc import convert_impl
loaded = "openvino_telemetry" in sys.modules
print(json.dumps({{"forks": len(forks), "sent": sent, "converter": convert_impl.tm.__name__,
                  "telemetry imported": loaded}}))
"""
#: The user's code loaded OpenVINO, telemetry and all, before zoo converted anything.
USER_LOADED_OPENVINO = """
import openvino_telemetry.main
openvino_telemetry.main.Telemetry.send_event = lambda self, *event, **_: sent.append(event)
import openvino
sent.clear()  # its import sent one
"""


@needs_openvino
@pytest.mark.parametrize("first", ["", USER_LOADED_OPENVINO], ids=["zoo-first", "user-first"])
def test_converting_sends_no_telemetry_and_forks_nothing(first: str, isolated: Path):
    # OpenVINO reports conversions to Google Analytics unless one opts out or runs in CI.
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    proc = subprocess.run(
        [sys.executable, "-c", TELEMETRY_CHECK.format(first=first)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )

    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout.splitlines()[-1])
    stub = "openvino.tools.ovc.telemetry_stub"
    assert found == {"forks": 0, "sent": [], "converter": stub, "telemetry imported": bool(first)}


@needs_openvino
@pytest.mark.parametrize("pooling", ["class_token", "mean"])
def test_a_kerashub_transformers_tokens_and_their_pooling_convert(tiny_presets, pooling):
    sets = [f"backbone.preset={tiny_presets.vit}", f"head.token_pooling={pooling}"]
    model = assembled(["shapes", "keras_hub", "gap_sigmoid"], tiny_presets.image_size, sets)
    images = np.random.default_rng(1).uniform(0, 255, (3, 48, 48, 3)).astype("float32")
    tokens = model.features.predict_on_batch(images)

    converted, choice = runners.compile_model(model.pooled.features, runners.plan("openvino"))

    assert choice.name == "openvino" and tokens.ndim == 3
    expected = tokens[:, 0] if pooling == "class_token" else tokens.mean(axis=1)
    assert relative_difference(converted(images), expected) <= 1e-3


@needs_openvino
def test_a_backbone_that_does_not_convert_runs_on_tensorflow_saying_why(zoo_cli, isolated):
    write(isolated / "host_callback.py", HOST_CALLBACK_PLUGIN)
    write(isolated / "registry.toml", '[plugins]\nload = ["host_callback.py"]\n')

    result = zoo_cli(
        "run", "shapes", "host_callback", "gap_sigmoid", *TINY_RUN, "--runtime", "openvino",
        "--json",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    chosen = result.json()["runtime"]
    assert (chosen["requested"], chosen["name"]) == ("openvino", "tensorflow")
    assert "the backbone host_callback did not convert to OpenVINO" in chosen["reason"]
    assert "PyFunc" in chosen["reason"]
    assert f"runtime: tensorflow, float32 (openvino: {chosen['reason']})" in result.stderr


# --- Running --------------------------------------------------------------------------


@needs_openvino
def test_auto_converts_when_the_images_to_extract_repay_it(zoo_cli, monkeypatch):
    few = zoo_cli(*FROZEN_RUN)  # 40 images
    monkeypatch.setattr(runners, "WORTH_CONVERTING", 40)
    enough = zoo_cli(*FROZEN_RUN, "--image-size", "24")

    assert few.json()["runtime"]["name"] == "tensorflow"
    assert "runtime: tensorflow, float32 (auto: 40 images to run; below 1,000" in few.stderr
    assert enough.json()["runtime"]["name"] == "openvino"
    assert enough.stderr.count("runtime: ") == 1  # one line says which and why


@needs_openvino
def test_auto_keeps_openvino_when_its_features_of_the_other_splits_are_cached(zoo_cli, monkeypatch):
    monkeypatch.setattr(runners, "WORTH_CONVERTING", 30)  # train and validation repay it
    trial = zoo_cli(*FROZEN_RUN, "--no-test")  # as zoo tune's trials run: no test split
    monkeypatch.setattr(runners, "WORTH_CONVERTING", 1000)  # the test split alone does not
    tested = zoo_cli(*FROZEN_RUN)

    assert trial.json()["runtime"]["name"] == "openvino"
    assert tested.json()["runtime"]["name"] == "openvino"  # else all three again, on TensorFlow
    assert "features: train from the cache" in tested.stderr
    assert "extracting features: train" not in tested.stderr


@needs_openvino
def test_bfloat16_is_asked_for_by_name_and_kept_apart_in_the_cache(zoo_cli, isolated):

    float32 = zoo_cli(*FROZEN_RUN, "--runtime", "openvino")
    bfloat16 = zoo_cli(*FROZEN_RUN, "--runtime", "openvino", "--runtime-precision", "bfloat16")
    bfloat16 = bfloat16.json()

    assert float32.exit_code == 0, float32.stderr
    assert float32.json()["runtime"]["precision"] == "float32"
    native = "BF16" in conversion.core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert bfloat16["runtime"]["precision"] == ("bfloat16" if native else "float32")
    keys = {run["feature_cache"]["train"]["key"] for run in (float32.json(), bfloat16)}
    assert len(keys) == (2 if native else 1)
    run_dir = isolated / bfloat16["run_dir"]
    assert json.loads((run_dir / "config.json").read_text())["runtime_precision"] == "bfloat16"
    assert json.loads((run_dir / "metrics.json").read_text())["runtime"] == bfloat16["runtime"]


@needs_openvino
def test_augmented_copies_are_extracted_by_openvino_too(zoo_cli):
    from zoo.train.features import store

    result = zoo_cli(*FROZEN_RUN, "--augment", "--augment-views", "2", "--runtime", "openvino")

    assert result.exit_code == 0, result.stderr
    assert result.json()["runtime"]["name"] == "openvino"
    train = result.json()["feature_cache"]["train"]["key"]
    folder = Path(os.environ["ZOO_CACHE_DIR"]) / "features" / train
    meta = json.loads((folder / store.META).read_text())
    assert (meta["count"], meta["views"], meta["shape"][0]) == (32, 2, 2)


def test_without_openvino_a_run_falls_back_to_tensorflow(isolated: Path):
    hidden = hide_openvino(isolated / "hide")

    auto = run_zoo(*FROZEN_RUN, env=hidden)
    asked = run_zoo(*FROZEN_RUN, "--runtime", "openvino", env=hidden)

    assert auto.exit_code == 0, auto.stderr
    chosen = auto.json()["runtime"]
    assert chosen["name"] == "tensorflow"
    assert chosen["reason"] == "OpenVINO is not installed (pip install 'zoo[openvino]')"
    assert asked.exit_code == 2
    assert "pip install 'zoo[openvino]'" in asked.stderr


@needs_openvino
def test_predict_runs_a_saved_model_on_openvino_as_keras_does(zoo_cli, isolated: Path):
    from PIL import Image

    run = zoo_cli(*FROZEN_RUN).json()["run_dir"]
    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 256, (30 + i, 40, 3)).astype("uint8")
        Image.fromarray(pixels).save(isolated / f"{i}.png")
    files = [str(isolated / f"{i}.png") for i in range(3)]

    on_openvino = run_zoo("predict", run, *files, "--runtime", "openvino", "--json")
    on_keras = zoo_cli("predict", run, *files, "--runtime", "tensorflow", "--json")

    assert on_openvino.exit_code == 0, on_openvino.stderr
    assert on_openvino.json()["runtime"]["name"] == "openvino"
    assert "runtime: openvino" in on_openvino.stderr
    found, expected = (
        np.array([p["probability"] for p in result.json()["predictions"]])
        for result in (on_openvino, on_keras)
    )
    assert np.allclose(found, expected, atol=1e-4)


@needs_openvino
def test_a_conversion_that_fails_late_extracts_on_tensorflow_under_its_own_key(
    zoo_cli, monkeypatch
):
    first = zoo_cli(*FROZEN_RUN, "--runtime", "openvino").json()
    features = Path(os.environ["ZOO_CACHE_DIR"]) / "features"
    # Damaged where only reading it tells: the run decides on OpenVINO without converting.
    with open(features / first["feature_cache"]["train"]["key"] / "features.f32", "r+b") as f:
        f.truncate(10)

    def fails(*args, **kwargs):
        raise RuntimeError("No conversion rule found")

    monkeypatch.setattr(runners, "OpenVinoModel", fails)
    again = zoo_cli(*FROZEN_RUN, "--runtime", "openvino")

    assert again.exit_code == 0, again.stderr
    chosen = again.json()["runtime"]
    assert chosen["name"] == "tensorflow" and "No conversion rule found" in chosen["reason"]
    used = again.json()["feature_cache"]
    assert {split["source"] for split in used.values()} == {"extracted"}
    assert not {s["key"] for s in used.values()} & {
        s["key"] for s in first["feature_cache"].values()
    }
