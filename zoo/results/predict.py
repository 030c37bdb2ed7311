"""Using a trained run: loading its model, and predicting classes of image files.

Images are decoded as the ``image_folder`` dataset decodes them (:mod:`zoo.data.images`)
and resized as training resizes (:func:`zoo.data.pipeline.resize_images`); the saved model
applies its backbone's preprocessing itself. So a file is predicted exactly as an
image of the training data was seen.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.data.files import find_files
from zoo.errors import ZooError
from zoo.results.saving import Loaded, Manifest, load_saved, manifest_from_run
from zoo.storage import runs
from zoo.storage.runs import RunRecord, read_run

if TYPE_CHECKING:
    import keras

    from zoo.data.limits import Limits
    from zoo.registry import Registry
    from zoo.runtime.runners import Runner


@dataclass(frozen=True)
class Trained:
    """A run's trained model and what predicting with it needs.

    ``warnings`` say where a plugin that built the model has another version now.
    """

    run_dir: Path
    model: keras.Model
    manifest: Manifest
    batch_size: int
    warnings: list[str] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return self.manifest.class_names

    @property
    def image_size(self) -> int:
        return self.manifest.image_size


def load_trained(run_dir: Path, registry: Registry | None = None) -> Trained:
    """Load ``run_dir``'s ``model.keras`` in this process, whichever plugins built it.

    Only the model file is needed: a damaged ``config.json`` or ``metrics.json`` is a
    warning (``Trained.warnings``), unless the model predates manifests and needs them.

    Args:
        registry: The loaded plugins (loaded as ``zoo`` loads them when ``None``).

    Raises:
        ZooError: not a run directory, no model saved (a failed or unfinished run), a
            damaged model file, or a model whose plugin is missing or changed.
    """
    record = read_run(run_dir)
    loaded = _load_run_model(record, registry)
    batch_size = record.config.get("batch_size")
    return Trained(
        run_dir=run_dir,
        model=loaded.model,
        manifest=loaded.manifest,
        batch_size=batch_size if isinstance(batch_size, int) and batch_size > 0 else 32,
        warnings=[*_damage_warnings(record), *loaded.warnings],
    )


def _damage_warnings(record: RunRecord) -> list[str]:
    """A damaged config.json or metrics.json, which the model file does without."""
    consequences = {
        runs.CONFIG: "batches hold 32 images (the run's own batch size is recorded there)",
        runs.METRICS: "model.keras holds the class names and everything else needed here",
    }
    return [
        f"{note}; {consequences[name]}. To repair the run directory, {runs.RESTORE[name]}"
        for name in consequences
        if (note := record.damage_note(name))
    ]


def load_model(path: str | os.PathLike[str], registry: Registry | None = None) -> keras.Model:
    """A trained model, from a run directory or a ``.keras`` file ``zoo export`` wrote.

    Works in any process: the plugins are loaded and the model's own Keras classes
    found as :mod:`zoo.results.saving` describes. The model takes raw RGB pixels (float32,
    0..255) of the training size.

    Raises:
        ZooError: as :func:`load_trained`.
    """
    path = Path(path)
    if path.is_dir():
        return load_trained(path, registry).model
    return load_saved(path, registry).model


def _load_run_model(record: RunRecord, registry: Registry | None) -> Loaded:
    def from_records(archive: Any) -> Manifest:
        needed_for = "a model saved before zoo put a manifest in model.keras needs"
        record.require(runs.CONFIG, needed_for)
        record.require(runs.METRICS, needed_for)
        return manifest_from_run(record.config, record.metrics, archive)

    return load_saved(saved_model_file(record), registry, fallback=from_records)


def saved_model_file(record: RunRecord) -> Path:
    """The run's ``model.keras``.

    Raises:
        ZooError: the run saved no model (it failed, or has not finished), or its
            model file is gone although it completed.
    """
    path = record.path / runs.MODEL
    if path.is_file():
        return path
    status = record.status
    if status == "completed":
        what = f"run {record.path} completed, but its {runs.MODEL} is missing: deleted or moved."
        fix = (
            f"restore {runs.MODEL} from a copy of the run directory, or train the run again "
            "(config.json holds the command)"
        )
    else:
        what = f"run {record.path} has no trained model ({runs.MODEL}); its status is '{status}'."
        fix = _FINISH.get(status, _FINISH["unknown"]).format(run=record.path)
    raise ZooError(what, expected="a run that completed training", fix=fix, got=str(record.path))


#: How to get a model from a run that has none yet, by its status.
_FINISH = {
    "interrupted": "finish it: zoo run --resume {run}",
    "running": "wait for it to finish; if it was killed, finish it: zoo run --resume {run}",
    "failed": "see its metrics.json for why it failed, and train it again",
    "unknown": "pick a completed run (`zoo compare` shows each run's status), or finish this "
    "one: zoo run --resume {run}",
}


@dataclass
class Predictions:
    """What predicting a set of files gave: ranked classes per file, and the failures."""

    predicted: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)


def find_images(paths: Sequence[Path]) -> tuple[list[Path], list[dict[str, str]]]:
    """The files to predict: files as given, and the images under folders, recursively.

    A file named on the command line is read whatever its ending; in folders, only
    image endings count (:data:`zoo.data.files.IMAGE_EXTENSIONS`). A path that does not
    exist is an error entry, not a reason to stop.
    """
    files: list[Path] = []
    errors = []
    for path in paths:
        if path.is_dir():
            files += find_files(path).images
        elif path.exists():
            files.append(path)
        else:
            errors.append({"file": str(path), "error": "no such file or directory"})
    return list(dict.fromkeys(files)), errors


def predict_files(
    trained: Trained,
    files: Sequence[Path],
    *,
    top_k: int,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
    runner: Runner | None = None,
) -> Predictions:
    """Predict ``files`` in batches; unreadable files become errors, the rest are ranked.

    Each file is decoded by :func:`zoo.data.images.read_image` and resized by
    :func:`zoo.data.pipeline.resize_images`, the functions training uses; a file that is not a
    regular file, or over a limit of :mod:`zoo.data.limits`, is an error, never read.
    ``runner`` runs the model instead of Keras (OpenVINO,
    :func:`zoo.runtime.runners.compile_model`).
    """
    import tensorflow as tf

    from zoo.data.limits import limits
    from zoo.data.pipeline import resize_images
    from zoo.runtime.loader import without_autotuning

    result = Predictions()
    within = limits()  # a bad ZOO_MAX_IMAGE_* is exit 2 here, not an error in tf.data
    spec = (tf.TensorSpec((None, None, 3), tf.uint8), tf.TensorSpec((), tf.int64))
    decoded = tf.data.Dataset.from_generator(
        lambda: _decoded(files, result.errors, within), output_signature=spec
    )
    batches = without_autotuning(resize_images(decoded, trained.image_size).batch(batch_size))
    for step, (images, indices) in enumerate(batches):
        if runner is None:
            outputs = trained.model.predict_on_batch(images)
        else:
            outputs = runner(images.numpy())
        for index, output in zip(indices.numpy(), outputs, strict=True):
            ranking = rank(output.tolist(), trained.class_names, top_k)
            result.predicted.append(_entry(files[index], ranking))
        if on_batch is not None:
            on_batch(step)
    return result


def _decoded(
    files: Sequence[Path], errors: list[dict[str, str]], within: Limits
) -> Iterator[tuple[Any, int]]:
    from zoo.data.images import UnreadableImage, read_image

    for index, path in enumerate(files):
        try:
            yield read_image(path, within), index
        except UnreadableImage as exc:
            errors.append({"file": str(path), "error": exc.reason})


def rank(
    output: Sequence[float], class_names: Sequence[str], top_k: int
) -> list[tuple[str, float]]:
    """The ``top_k`` most probable classes, best first, from one model output.

    A single output is a sigmoid: the probability of the second class, which wins
    from 0.5 up. Several outputs are a softmax over the classes.
    """
    if len(output) == 1:
        p = output[0]
        probabilities = [1.0 - p, p]
        order = [1, 0] if p >= 0.5 else [0, 1]
    else:
        probabilities = list(output)
        order = sorted(range(len(output)), key=lambda i: -probabilities[i])
    if len(probabilities) != len(class_names):
        raise ZooError(
            f"the model has {len(output)} outputs but the run records {len(class_names)} classes.",
            expected="one sigmoid output for two classes, or one softmax output per class",
            fix="check that model.keras and metrics.json come from the same run",
            got=list(class_names),
        )
    return [(class_names[i], float(probabilities[i])) for i in order[:top_k]]


def _entry(path: Path, ranking: list[tuple[str, float]]) -> dict[str, Any]:
    return {
        "file": str(path),
        "class": ranking[0][0],
        "probability": ranking[0][1],
        "top_k": [{"class": name, "probability": p} for name, p in ranking],
    }
