"""Exporting a run's model for people without zoo: a ``.keras`` file or a SavedModel here;
LiteRT, ONNX and OpenVINO in :mod:`zoo.results.exports`, checked by their runtimes.

Both hold the whole model, preprocessing included (built-in Keras layers), and the
class names.

Both take RGB pixels (0..255) of any size and resize them to the training size as
``zoo predict`` does (a ``Resizing`` layer in front of the trained model, see
:func:`any_size`).

- ``.keras``: loads with ``keras.models.load_model`` where the packages of its
  classes are installed: Keras alone for Keras Applications backbones, ``keras-hub`` too
  for a KerasHub backbone, a plugin's package for a plugin's own Keras classes
  (``zoo.json``'s ``requires`` names the packages, ``keras_objects`` the classes;
  ``zoo export`` prints them; or use ``zoo.load_model``).
  Input: float32 ``[batch, height, width, 3]``.
  Output: the model's probabilities (one sigmoid output for two classes: the second
  class's probability). ``zoo.json`` in the archive is the manifest
  (:class:`zoo.results.saving.Manifest`): class names, image size, components.
- SavedModel: runs in TensorFlow Serving or ``tf.saved_model.load`` without any Python
  code of zoo or its plugins. ``serve`` (also ``serving_default``) takes uint8 images
  ``[batch, height, width, 3]`` and ``serve_float32`` the same as float32; both return
  ``probabilities`` ``[batch, classes]``, the predicted ``class`` (its name) and its
  ``probability``. ``class_names`` (no input) returns the class names in column order;
  ``assets.extra/zoo.json`` is the manifest.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.results.saving import MANIFEST, Manifest, save_model
from zoo.storage import atomic, disk_full
from zoo.storage.disk_full import variable_bytes
from zoo.storage.os_errors import explained

if TYPE_CHECKING:
    import keras

    from zoo.results.predict import Trained

#: The formats for TensorFlow, then those for other runtimes (:mod:`zoo.results.exports`).
FORMATS = ("keras", "savedmodel", "litert", "onnx", "openvino")
#: Formats written as a folder.
FOLDERS = ("savedmodel", "litert", "onnx", "openvino")
#: How to go on after a full disk.
FIX = "free space on that disk or pass another --output PATH, then export again"


def export(trained: Trained, fmt: str, output: Path) -> Path:
    """Write ``trained``'s model to ``output`` in format ``fmt``; return ``output``.

    ``trained`` comes from :func:`zoo.results.predict.load_trained`, so nothing is exported
    from a model that does not load. The output appears whole or not at all: it is
    written beside its final path and renamed into place.

    Raises:
        ZooError: an unknown format, or an output that exists or has the wrong suffix.
        DiskFull: the disk filled up (:mod:`zoo.storage.disk_full`).
    """
    check_output(fmt, output)
    model = any_size(trained)
    needed = variable_bytes(model)
    writing = disk_full.writing("the exported model", output, needed, FIX)
    with writing, staged(output, fmt in FOLDERS) as staging:
        if fmt == "keras":
            save_model(model, staging, trained.manifest)
        else:
            write_saved_model(model, trained.manifest, staging)
    return output


def loads_with(fmt: str, output: Path) -> list[str]:
    """The packages (pip names) that load the export at ``output``, read back from it.

    A SavedModel needs TensorFlow alone. A ``.keras`` file needs Keras and its backend,
    and the packages its manifest names (``keras-hub`` for a KerasHub backbone: Keras
    imports the backbone's classes from it).
    """
    if fmt == "savedmodel":
        return ["tensorflow"]
    from zoo.results.saving import read_archive

    manifest = read_archive(output).manifest
    extra = manifest.requires if manifest is not None else []
    return ["keras", "tensorflow", *(name for name in extra if name not in ("keras", "tensorflow"))]


def any_size(trained: Trained) -> keras.Model:
    """``trained``'s model behind a ``Resizing`` layer: images of any size in.

    ``Resizing`` is ``tf.image.resize`` (bilinear, no antialiasing), what ``zoo
    predict`` resizes with (:func:`zoo.data.pipeline.resize_images`); at the training size it
    changes nothing. Keras's own input check is no guard: once ``predict`` has run,
    its traced function takes any size without a word.
    """
    import keras

    size = trained.image_size
    images = keras.Input((None, None, 3), name="image")
    resized = keras.layers.Resizing(size, size, interpolation="bilinear", name="resize")(images)
    # training=False: inference only, so exporters never see dropout's random ops.
    outputs = trained.model(resized, training=False)
    return keras.Model(images, outputs, name=f"{trained.model.name}_any_size")


def write_saved_model(model: keras.Model, manifest: Manifest, path: Path) -> None:
    """``model`` as a SavedModel with ``serve``, ``serve_float32`` and ``class_names``.

    Keras's own ``model.export`` has one endpoint, for the model's float32 input; a
    server usually receives decoded uint8 pixels, and wants class names.
    """
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    serve = _serving_function(model, manifest)
    for name, dtype in (("serve", tf.uint8), ("serve_float32", tf.float32)):
        archive.add_endpoint(
            name, serve, input_signature=[tf.TensorSpec([None, None, None, 3], dtype, "images")]
        )
    names = manifest.class_names
    archive.add_endpoint("class_names", lambda: {"class_names": tf.constant(names)}, [])
    # write_out(verbose=False) still lets TensorFlow print its asset notes to stdout,
    # which is zoo's data stream.
    with contextlib.redirect_stdout(io.StringIO()):
        archive.write_out(str(path), verbose=False)
    (path / "assets.extra").mkdir()
    (path / "assets.extra" / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")


def _serving_function(model: keras.Model, manifest: Manifest) -> Any:
    """Images (uint8 or float32, any size) to ``zoo predict``'s answer, as tensors."""
    import tensorflow as tf

    class_names = tf.constant(manifest.class_names)
    sigmoid = manifest.output == "sigmoid"

    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = model(tf.cast(images, tf.float32), training=False)
        if sigmoid:  # the probability of the second class, which wins from 0.5 up
            probabilities = tf.concat([1.0 - outputs, outputs], axis=-1)
            index = tf.cast(outputs[:, 0] >= 0.5, tf.int64)
        else:
            probabilities = outputs
            index = tf.argmax(outputs, axis=-1)
        return {
            "probabilities": probabilities,
            "class": tf.gather(class_names, index),
            "probability": tf.reduce_max(probabilities, axis=-1),
        }

    return serve


def check_output(fmt: str, output: Path) -> None:
    """Refuse an unknown format, an output that exists, or a ``.keras`` file misnamed.

    Raises:
        ZooError: saying which, and how to fix it.
    """
    if fmt not in FORMATS:
        raise ZooError(
            f"unknown export format '{fmt}'.",
            expected=f"one of {', '.join(FORMATS)}",
            fix=f"pass --format {FORMATS[0]} (or another of those)",
            got=fmt,
        )
    if output.exists():
        raise ZooError(
            f"{output} already exists; zoo export never overwrites.",
            expected="a path that does not exist yet",
            fix="remove it, or pass another --output PATH",
            got=str(output),
        )
    if fmt == "keras" and output.suffix != ".keras":
        raise ZooError(
            "a Keras model file must end in .keras (Keras refuses to load it otherwise).",
            expected="--output NAME.keras",
            fix=f"pass --output {output.with_suffix('.keras')}",
            got=str(output),
        )
    if fmt in FOLDERS and output.suffix in (".tflite", ".onnx", ".xml", ".keras"):
        raise ZooError(
            f"--format {fmt} writes a folder (the model file, labels.txt, signature.json and "
            "the check, export.json), and this name looks like a file's.",
            expected="--output FOLDER, a folder that does not exist yet",
            fix=f"pass --output {output.with_suffix('')}",
            got=str(output),
        )


@contextlib.contextmanager
def staged(output: Path, folder: bool) -> Iterator[Path]:
    """A file (``keras``) or folder (the other formats) to write ``output`` in, renamed to
    it when the block succeeds (never over one that appeared meanwhile)."""
    with contextlib.ExitStack() as stack:
        expected, fix = "a folder zoo can write to", "pass another --output PATH"
        with explained("write to", output.parent, expected=expected, fix=fix, got=output):
            output.parent.mkdir(parents=True, exist_ok=True)
            staged = atomic.staged(output, folder=folder, suffix=output.suffix, replace=False)
            staging = stack.enter_context(staged)
        yield staging
