"""The round trip ``zoo.testing.check_plugin`` runs: save here, load in a new process.

For each backbone and head of the plugin under test, zoo builds a model as ``zoo run``
does (:func:`zoo.model.assemble.build_model`): the backbone under a small probe head, the head
on a small probe backbone (a feature map, else a vector). It trains the model one step
with zoo's training loop, saves it as a run saves it (:func:`zoo.results.saving.save_trained`)
and predicts four images. Then a new Python process (:mod:`zoo.testing.reload`) loads
the plugin as zoo loads plugins, loads each model and predicts the same images; the
answers must agree. Only a new process shows whether a model loads where nothing but the
plugin's registration has been imported, as in ``zoo predict`` after ``zoo run``.
Imports TensorFlow and Keras.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from zoo.components import Backbone, BuiltBackbone, BuiltHead, Dataset, Head
from zoo.errors import ZooError
from zoo.model.assemble import Assembled, ComponentError, build_model, make_optimizer
from zoo.registry import Entry, PluginInfo
from zoo.results.saving import save_trained
from zoo.runconfig import Choice, Resolved, RunConfig
from zoo.runtime.loader import keras, tf
from zoo.testing.contracts import Problem
from zoo.testing.reload import Saved, one_line
from zoo.train.distribute import place
from zoo.train.loop import Loop

#: The images predicted on both sides of the round trip.
_BATCH = 4
#: Predictions of a reloaded model may differ from the saved one's by rounding only.
_TOLERANCE = 1e-5


def round_trip(
    plugin: object,
    entries: Sequence[Entry],
    values: Mapping[str, dict[str, Any]],
    image_size: int,
) -> tuple[list[str], list[Problem]]:
    """Save a model of each entry here, load and predict it in a new process.

    Args:
        plugin: The plugin's name as installed, or the module object loaded; a plugin
            a new process cannot import (a class, an instance) is not round-tripped.
        entries: Its backbones and heads that passed their contract checks.
        values: Their resolved parameters, by qualified name.
        image_size: The image side the models are built at (at least a backbone's
            minimum).

    Returns:
        The components that made the round trip, and the problems of the others.
    """
    loader = _loader(plugin)
    if loader is None or not entries:
        return [], []
    problems: list[Problem] = []
    with tempfile.TemporaryDirectory(prefix="zoo-round-trip-") as folder:
        saved = []
        for i, entry in enumerate(entries):
            label = f"{entry.kind} {entry.qualified_name}"
            try:
                size = max(image_size, getattr(entry.component, "min_image_size", 1))
                saved.append(_save(entry, values[entry.qualified_name], size, Path(folder), i))
            except Exception as exc:
                problems.append(Problem(label, "round trip", f"saving raised {one_line(exc)}"))
        problems += _load_elsewhere(loader, saved, Path(folder))
    failed = {problem.component for problem in problems}
    return [s.label for s in saved if s.label not in failed], problems


def _loader(plugin: object) -> dict[str, Any] | None:
    """How the new process loads ``plugin``: by name, or its module's file."""
    if isinstance(plugin, str):
        return {"name": plugin}
    file = getattr(plugin, "__file__", None)
    if file is None:
        return None
    return {"module": getattr(plugin, "__name__", ""), "file": file}


# --- Saving, in this process ---------------------------------------------------------


def _save(entry: Entry, values: dict[str, Any], size: int, folder: Path, index: int) -> Saved:
    assembled, resolved, classes = _assemble(entry, values, size)
    rng = np.random.default_rng(index)
    images = rng.integers(0, 256, (_BATCH, size, size, 3)).astype("float32")
    labels = np.arange(_BATCH) % classes
    _train_step(assembled, images, labels)
    stem = folder / f"{index}-{entry.kind}"
    saved = Saved(
        label=f"{entry.kind} {entry.qualified_name}",
        model=f"{stem}.keras",
        images=f"{stem}-images.npy",
        expected=f"{stem}-expected.npy",
        loaded=f"{stem}-loaded.npy",
    )
    save_trained(Path(saved.model), assembled, resolved, [f"class_{i}" for i in range(classes)])
    np.save(saved.images, images)
    np.save(saved.expected, np.asarray(assembled.model.predict_on_batch(images)))
    return saved


def _assemble(entry: Entry, values: dict[str, Any], size: int) -> tuple[Assembled, Resolved, int]:
    """The model ``zoo run`` would build around ``entry``, its configuration, its classes."""
    if entry.kind == "backbone":
        resolved = _resolved(entry, values, _PROBE_HEAD, {}, size)
        return build_model(resolved, 2), resolved, 2
    head = entry.component
    assert isinstance(head, Head)
    classes = 2 if head.supports(2) else head.min_classes
    refusals = []
    for probe in (_PROBE_MAP, _PROBE_VECTOR):
        resolved = _resolved(probe, {}, entry, values, size)
        try:
            return build_model(resolved, classes), resolved, classes
        except ComponentError:
            raise
        except ZooError as exc:
            refusals.append(exc.what)
    raise ZooError("it refused both probe backbones: " + "; ".join(refusals))


def _resolved(
    backbone: Entry,
    backbone_values: dict[str, Any],
    head: Entry,
    head_values: dict[str, Any],
    size: int,
) -> Resolved:
    config = RunConfig(
        dataset=Choice("dataset", _PROBE_DATA.name, _PROBES.name),
        backbone=Choice("backbone", backbone.name, backbone.plugin.name, backbone_values),
        head=Choice("head", head.name, head.plugin.name, head_values),
        epochs=1,
        batch_size=_BATCH,
        image_size=size,
        learning_rate=0.01,
        optimizer="sgd",
        seed=0,
    )
    return Resolved(config, _PROBE_DATA, backbone, head)


def _train_step(assembled: Assembled, images: Any, labels: Any) -> None:
    """One step of zoo's own training loop, as a run trains."""
    placement = place("default")
    loop = Loop(
        assembled.model,
        assembled.loss,
        assembled.metrics,
        placement,
        make_optimizer("sgd", 0.01),
    )
    loop.train_epoch(tf.data.Dataset.from_tensor_slices((images, labels)).batch(_BATCH))


# --- Loading, in a new process --------------------------------------------------------


def _load_elsewhere(loader: dict[str, Any], saved: list[Saved], folder: Path) -> list[Problem]:
    if not saved:
        return []
    spec = folder / "spec.json"
    results = folder / "results.json"
    spec.write_text(
        json.dumps(
            {"plugin": loader, "models": [asdict(s) for s in saved], "results": str(results)}
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run(
        [sys.executable, "-m", "zoo.testing.reload", str(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if proc.returncode != 0 or not results.is_file():
        tail = " ".join(proc.stderr.strip().splitlines()[-3:])
        return [
            Problem(
                s.label, "round trip", f"the new process failed (exit {proc.returncode}): {tail}"
            )
            for s in saved
        ]
    errors = json.loads(results.read_text())
    return [p for s in saved if (p := _compare(s, errors.get(s.label)))]


def _compare(saved: Saved, error: str | None) -> Problem | None:
    if error:
        return Problem(saved.label, "round trip", f"loading in a new process failed: {error}")
    expected, loaded = np.load(saved.expected), np.load(saved.loaded)
    if expected.shape == loaded.shape and np.allclose(expected, loaded, atol=_TOLERANCE):
        return None
    return Problem(
        saved.label,
        "round trip",
        f"loaded in a new process, the model predicts {loaded.tolist()}; it predicted "
        f"{expected.tolist()} when saved",
    )


# --- Probes: the other half of each model ------------------------------------------------


def _probe_head(features: Any, num_classes: int, params: Mapping[str, Any]) -> Any:
    pool = {4: keras.layers.GlobalAveragePooling2D, 3: keras.layers.GlobalAveragePooling1D}
    rank = len(features.shape)
    x = pool[rank]()(features) if rank in pool else features
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return BuiltHead(outputs=outputs, loss="sparse_categorical_crossentropy")


def _probe_backbone(vector: bool) -> Any:
    def build(image_shape: tuple[int, int, int], params: Mapping[str, Any]) -> Any:
        layers = [keras.Input(image_shape), keras.layers.Conv2D(4, 3, padding="same")]
        if vector:
            layers.append(keras.layers.GlobalAveragePooling2D())
        return BuiltBackbone(model=keras.Sequential(layers), preprocessing="unit")

    return build


def _never(params: Mapping[str, Any]) -> Any:
    raise AssertionError("the round trip never builds its probe dataset")


_PROBES = PluginInfo("zoo_round_trip", "built-in", "zoo", "-", "zoo.testing.roundtrip")
_PROBE_DATA = Entry(Dataset("probe_images", "random images (never built)", _never), _PROBES)
_PROBE_HEAD = Entry(Head("probe_head", "pooling + Dense(n, softmax)", _probe_head), _PROBES)
_PROBE_MAP = Entry(Backbone("probe_map", "Conv2D(4)", _probe_backbone(False)), _PROBES)
_PROBE_VECTOR = Entry(Backbone("probe_vector", "Conv2D(4) + GAP", _probe_backbone(True)), _PROBES)
