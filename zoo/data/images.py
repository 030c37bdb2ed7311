"""Reading image files: one decoder for training pipelines and for prediction.

``decode`` is the only place an image file becomes pixels. The ``image_folder``
dataset maps it over file contents in tf.data, and ``read_image`` calls the same
function eagerly, so a picture is decoded for ``zoo predict`` and ``zoo evaluate``
exactly as it was for training.

Which files are images is decided by their names (:mod:`zoo.data.files`, which lists
them without TensorFlow); this module imports TensorFlow.

How each format is decoded, by the file's first bytes:

- JPEG: ``decode_jpeg(dct_method="INTEGER_ACCURATE")``, which matches Pillow pixel for
  pixel (``decode_image``'s fast integer DCT does not).
- PNG and GIF (the first frame): TensorFlow's decoder, three channels, alpha dropped as
  Pillow's ``convert("RGB")`` drops it, 16-bit PNGs scaled to 8 bits.
- Every other format (BMP, whose palettes TensorFlow misreads; WebP, TIFF and the rest,
  which it does not read): Pillow, inside the same function (``tf.numpy_function``,
  first frame, ``convert("RGB")``), so tf.data decodes them in parallel like the rest.
- Truncated files, empty files and other formats are errors.

Image files are untrusted (:mod:`zoo.data.limits`): only regular files are read, at
most ``ZOO_MAX_IMAGE_BYTES`` of them, and :func:`decode` refuses an image whose header
says it has more than ``ZOO_MAX_IMAGE_PIXELS`` before any decoder runs, in tf.data as
eagerly.

The file's own bytes decide how it is decoded, not its name: a PNG named ``.jpg`` is
read. EXIF orientation is ignored, as Keras' ``image_dataset_from_directory`` ignores
it.
"""

from __future__ import annotations

import functools
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoo.data.limits import (
    MAX_PIXELS,
    Limits,
    UnreadableImage,
    check_pixels,
    checked,
    limits,
    read_checked,
    read_file,
)
from zoo.runtime.loader import tf, without_autotuning

#: Changes whenever ``decode`` changes what it returns, so cached verdicts expire.
DECODER_VERSION = "2"


def decode_file(path: tf.Tensor, within: Limits) -> tf.Tensor:
    """The image in the file named by the string tensor ``path``, in a graph.

    Read by :func:`zoo.data.limits.read_file` within ``within``, its pixels checked,
    then decoded as :func:`decode` decodes.
    """
    read = tf.autograph.experimental.do_not_convert(functools.partial(read_checked, within=within))
    contents = tf.numpy_function(read, [path], tf.string, stateful=True)
    return _decode_checked(tf.reshape(contents, ()))


def decode(contents: tf.Tensor, max_pixels: int = MAX_PIXELS) -> tf.Tensor:
    """An image file's bytes as a uint8 ``[height, width, 3]`` tensor.

    Works eagerly and inside ``tf.data`` maps. Greyscale, palette and CMYK images
    become RGB, alpha is dropped, 16-bit PNGs are scaled to 8 bits, and an animation
    gives its first frame. Raises ``tf.errors.InvalidArgumentError`` (in a graph) when
    the bytes are not an image TensorFlow or Pillow can read, or the header says it
    has more than ``max_pixels`` (:func:`check_pixels`, before any decoder runs).
    """
    check = tf.autograph.experimental.do_not_convert(
        functools.partial(checked, max_pixels=max_pixels)
    )
    return _decode_checked(tf.reshape(tf.numpy_function(check, [contents], tf.string), ()))


def _decode_checked(contents: tf.Tensor) -> tf.Tensor:
    def jpeg() -> tf.Tensor:
        # decode_image would use libjpeg's fast integer DCT, off from Pillow at block
        # edges; the accurate one matches Pillow exactly.
        return tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE")

    def png_or_gif() -> tf.Tensor:
        return tf.io.decode_image(contents, channels=3, expand_animations=False)

    def pillow() -> tf.Tensor:  # BMP, WebP, TIFF and every other format
        return tf.numpy_function(_decode_with_pillow, [contents], tf.uint8, stateful=False)

    start = tf.strings.substr(contents, 0, 4)
    png_or_gif_bytes = tf.logical_or(start == b"\x89PNG", start == b"GIF8")
    image = tf.case(
        [(tf.io.is_jpeg(contents), jpeg), (png_or_gif_bytes, png_or_gif)], default=pillow
    )
    image.set_shape((None, None, 3))
    return image


def _decode_with_pillow(contents: bytes | np.ndarray) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    # bytes in a graph, a 0-d object array eagerly. (np.asarray(bytes) would drop
    # trailing zero bytes, and BMP pixel rows often end with them.) An animation
    # (GIF, WebP, TIFF pages) opens on its first frame.
    data = contents.item() if isinstance(contents, np.ndarray) else contents
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    # ValueError becomes InvalidArgumentError in a graph, like TensorFlow's decoders.
    except UnidentifiedImageError as exc:
        unknown = "Unknown image file format: neither TensorFlow nor Pillow reads it"
        raise ValueError(unknown) from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError...
        raise ValueError(f"Pillow cannot decode it: {exc}") from exc


def read_image(path: str | os.PathLike[str], within: Limits | None = None) -> np.ndarray:
    """The image in ``path`` as a uint8 numpy array ``[height, width, 3]``.

    It is read by :func:`zoo.data.limits.read_file` and decoded by :func:`decode`,
    exactly as :func:`decode_file` reads and decodes it for training.

    Args:
        within: The limits (the environment's, :func:`zoo.data.limits.limits`, when
            ``None``).

    Raises:
        UnreadableImage: the file is missing, empty, truncated, not an image, not a
            regular file, or over a limit.
    """
    path = Path(path)
    within = within or limits()
    data = read_file(path, within.bytes)
    if not data:
        raise UnreadableImage(path, "the file is empty (0 bytes)")
    try:
        check_pixels(data, within.pixels)  # decode checks too; this says why plainly
        return decode(tf.constant(data), within.pixels).numpy()
    except (tf.errors.OpError, ValueError) as exc:
        raise UnreadableImage(path, _reason(exc)) from exc


def _reason(exc: Exception) -> str:
    """TensorFlow's message without its op names: ``Unknown image file format...``."""
    text = exc.message if isinstance(exc, tf.errors.OpError) else str(exc)
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:\w+\].*$", "", text, flags=re.DOTALL)
    return text.strip() or type(exc).__name__


#: Indices of decoded files read back at a time by :func:`find_unreadable`.
_INDEX_BATCH = 256


def find_unreadable(paths: Sequence[str | os.PathLike[str]]) -> dict[Path, str]:
    """Decode every file once, in parallel; return the unreadable ones with the reason.

    The decoding runs in tf.data on all cores and keeps only the index and shape of each
    image that decoded, so memory stays flat; they come back in batches, as one at a
    time would take longer than the decoding. The few files that fail are decoded once
    more, one at a time, to say why.
    """
    if not paths:
        return {}
    names = [os.fspath(p) for p in paths]
    decoded = tf.data.Dataset.from_tensor_slices((names, tf.range(len(names))))
    within = limits()
    decoded = decoded.map(
        lambda name, index: (index, tf.shape(decode_file(name, within))),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    ).ignore_errors()  # a file that fails is left out, before the batching
    batches = without_autotuning(decoded.batch(_INDEX_BATCH)).as_numpy_iterator()  # shapes: [3]
    readable = {int(index) for indices, _ in batches for index in indices}
    failed = [Path(name) for i, name in enumerate(names) if i not in readable]
    return {path: _why_unreadable(path, within) for path in failed}


def _why_unreadable(path: Path, within: Limits) -> str:
    try:
        read_image(path, within)
    except UnreadableImage as exc:
        return exc.reason
    # It failed in the parallel pass, not alone: count it unreadable all the same,
    # since training would decode it in that same pass.
    return "decoding failed in tf.data"
