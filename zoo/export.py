"""Exporting a run's model for people without zoo: a ``.keras`` file or a SavedModel.

Both hold the whole model, preprocessing included (built-in Keras layers), and the
class names.

- ``.keras``: loads with ``keras.models.load_model`` alone, unless a plugin's own
  Keras classes are in it (``zoo.json``'s ``keras_objects`` names their modules; import
  them first, or use ``zoo.load_model``). Input: float32 RGB pixels in 0..255, resized
  to the training size; Keras refuses any other size. Output: the model's
  probabilities (one sigmoid output for two classes: the second class's probability).
  ``zoo.json`` in the archive holds the manifest (:class:`zoo.saving.Manifest`).
- SavedModel: runs in TensorFlow Serving or ``tf.saved_model.load`` without any Python
  code of zoo or its plugins. ``serve`` (also ``serving_default``) takes uint8 images
  ``[batch, height, width, 3]`` of any size and ``serve_float32`` the same as float32
  in 0..255; both resize them to the training size as ``zoo predict`` does
  (``tf.image.resize``, bilinear) and return ``probabilities`` ``[batch, classes]``,
  the predicted ``class`` (its name) and its ``probability``. ``class_names`` (no
  input) returns the class names in column order; ``assets.extra/zoo.json`` is the
  manifest.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.saving import MANIFEST, save_model

if TYPE_CHECKING:
    from zoo.predict import Trained

FORMATS = ("keras", "savedmodel")


def export(trained: Trained, fmt: str, output: Path) -> Path:
    """Write ``trained``'s model to ``output`` in format ``fmt``; return ``output``.

    ``trained`` comes from :func:`zoo.predict.load_trained`, so nothing is exported
    from a model that does not load. The output appears whole or not at all: it is
    written beside its final path and renamed into place.

    Raises:
        ZooError: an unknown format, or an output that exists or has the wrong suffix.
    """
    check_output(fmt, output)
    with _staged(output) as staging:
        if fmt == "keras":
            save_model(trained.model, staging, trained.manifest)
        else:
            write_saved_model(trained, staging)
    return output


def write_saved_model(trained: Trained, path: Path) -> None:
    """``trained``'s model as a SavedModel with ``serve``, ``serve_float32`` and ``class_names``.

    Keras's own ``model.export`` has one endpoint, for the model's float32 input of the
    training size; a server usually receives decoded uint8 pixels of any size.
    """
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(trained.model)
    serve = _serving_function(trained)
    for name, dtype in (("serve", tf.uint8), ("serve_float32", tf.float32)):
        archive.add_endpoint(
            name, serve, input_signature=[tf.TensorSpec([None, None, None, 3], dtype, "images")]
        )
    names = trained.class_names
    archive.add_endpoint("class_names", lambda: {"class_names": tf.constant(names)}, [])
    # write_out(verbose=False) still lets TensorFlow print its asset notes to stdout,
    # which is zoo's data stream.
    with contextlib.redirect_stdout(io.StringIO()):
        archive.write_out(str(path), verbose=False)
    (path / "assets.extra").mkdir()
    (path / "assets.extra" / MANIFEST).write_text(trained.manifest.to_json(), encoding="utf-8")


def _serving_function(trained: Trained) -> Any:
    """Images of any size and dtype to ``zoo predict``'s answer, as tensors."""
    import tensorflow as tf

    model, size = trained.model, trained.image_size
    class_names = tf.constant(trained.class_names)
    sigmoid = trained.manifest.output == "sigmoid"

    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        # zoo.data.resize_images, on a batch: the same bilinear resize, to float32.
        pixels = tf.image.resize(images, (size, size))
        outputs = model(pixels, training=False)
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
            fix="pass --format keras or --format savedmodel",
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


@contextlib.contextmanager
def _staged(output: Path) -> Iterator[Path]:
    """A temporary path beside ``output``, renamed to it when the block succeeds."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    except OSError as exc:
        raise ZooError(
            f"cannot write to {output.parent}: {exc.strerror}.",
            expected="a folder zoo can write to",
            fix="pass another --output PATH",
            got=str(output),
        ) from None
    target = staging / output.name
    try:
        yield target
        os.replace(target, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
