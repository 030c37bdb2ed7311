"""Exporting a run's model: the ``.keras`` file, or a TensorFlow SavedModel for serving.

Both hold the whole model, preprocessing included, so raw pixels in give the
probabilities ``zoo predict`` prints. The SavedModel has two serving functions:

- ``serve`` (also ``serving_default``): uint8 images ``[batch, size, size, 3]``, the
  pixels of a decoded image file resized to the training size;
- ``serve_float32``: the same as float32 in 0..255 (what ``tf.image.resize`` returns).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import ZooError
from zoo.predict import load_trained, saved_model_file
from zoo.runs import read_run

if TYPE_CHECKING:
    import keras

FORMATS = ("keras", "savedmodel")


def export(run_dir: Path, fmt: str, output: Path) -> Path:
    """Write ``run_dir``'s model to ``output`` in format ``fmt``; return ``output``.

    The output appears whole or not at all: it is written beside its final path and
    renamed into place.

    Raises:
        ZooError: an unknown format, an output that exists or has the wrong suffix, or a
            run without a trained model.
    """
    _check_output(fmt, output)
    if fmt == "keras":
        source = saved_model_file(read_run(run_dir))
        with _staged(output) as staging:
            shutil.copyfile(source, staging)
    else:
        trained = load_trained(run_dir)
        with _staged(output) as staging:
            write_saved_model(trained.model, trained.image_size, staging)
    return output


def write_saved_model(model: keras.Model, image_size: int, path: Path) -> None:
    """``model`` as a SavedModel with ``serve`` (uint8) and ``serve_float32`` endpoints.

    This is ``model.export(path)`` with a second endpoint: Keras's own export takes the
    model's float32 input only, and a server usually receives decoded uint8 pixels.
    """
    import keras
    import tensorflow as tf

    shape = [None, image_size, image_size, 3]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda images: model(tf.cast(images, tf.float32), training=False),
        input_signature=[tf.TensorSpec(shape, tf.uint8, name="images")],
    )
    archive.add_endpoint(
        "serve_float32",
        lambda images: model(images, training=False),
        input_signature=[tf.TensorSpec(shape, tf.float32, name="images")],
    )
    # write_out(verbose=False) still lets TensorFlow print its asset notes to stdout,
    # which is zoo's data stream.
    with contextlib.redirect_stdout(io.StringIO()):
        archive.write_out(str(path), verbose=False)


def _check_output(fmt: str, output: Path) -> None:
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
