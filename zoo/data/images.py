"""Reading image files: one decoder for training pipelines and for prediction.

``decode`` is the only place an image file becomes pixels. The ``image_folder``
dataset maps it over file contents in tf.data, and ``read_image`` calls the same
function eagerly, so a picture is decoded for ``zoo predict`` and ``zoo evaluate``
exactly as it was for training.

Which files are images is decided by their names (:mod:`zoo.data.files`, which lists
them without TensorFlow); this module imports TensorFlow.

How each format is decoded, by the file's first bytes and its header's mode:

- JPEG: ``decode_jpeg(dct_method="INTEGER_ACCURATE")``, which matches Pillow pixel for
  pixel (``decode_image``'s fast integer DCT does not); CMYK JPEGs by Pillow.
- PNG: TensorFlow's decoder, three channels, alpha dropped as Pillow's
  ``convert("RGB")`` drops it, 16-bit colour PNGs scaled to 8 bits (as Pillow reads
  them); 16-bit greyscale by Pillow.
- Every other format (GIF, whose transparent pixels TensorFlow makes black; BMP, whose
  palettes it misreads; WebP, TIFF and the rest, which it does not read): Pillow,
  inside the same function (``tf.numpy_function``, first frame, :func:`as_rgb`), so
  tf.data decodes them in parallel like the rest.
- Truncated files, empty files and other formats are errors.

Whatever decodes it, the result is Pillow's ``np.asarray(image.convert("RGB"))``,
except 16-bit greyscale, scaled to 8 bits (the high byte) where ``convert`` clips it.
And it is upright, as ``PIL.ImageOps.exif_transpose`` turns it by its EXIF orientation
(Keras' ``image_dataset_from_directory`` does not): after TensorFlow's decoders, by
TensorFlow ops with the orientation read from the header (:mod:`zoo.data.exif`); after
Pillow's, by ``exif_transpose`` itself.

Image files are untrusted (:mod:`zoo.data.limits`): only regular files are read, at
most ``ZOO_MAX_IMAGE_BYTES`` of them, and :func:`decode` refuses an image whose header
says it has more than ``ZOO_MAX_IMAGE_PIXELS`` before any decoder runs, in tf.data as
eagerly.

The file's own bytes decide how it is decoded, not its name: a PNG named ``.jpg`` is
read.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.data.exif import upright
from zoo.data.limits import (
    MAX_PIXELS,
    Header,
    Limits,
    UnreadableImage,
    limits,
    read_checked,
    read_file,
    read_header,
)
from zoo.runtime.loader import tf, without_autotuning

if TYPE_CHECKING:
    import PIL.Image

#: Changes whenever ``decode`` changes what it returns, so cached verdicts expire and
#: cached features are computed again (3: EXIF orientation, CMYK JPEGs and 16-bit
#: greyscale by Pillow as the README's snippet reads them).
DECODER_VERSION = "3"
#: Pillow's modes of 16-bit greyscale, scaled to 8 bits as TensorFlow scales a 16-bit
#: PNG (Pillow's ``convert("RGB")`` would clip every value over 255 to white).
SIXTEEN_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N")
#: What the header tells the graph: the file's bytes, its orientation, whether Pillow
#: decodes it.
_HEADER_TYPES = (tf.string, tf.int32, tf.bool)


def decode_file(path: tf.Tensor, within: Limits) -> tf.Tensor:
    """The image in the file named by the string tensor ``path``, in a graph.

    Read by :func:`zoo.data.limits.read_file` within ``within``, its header checked,
    then decoded and turned upright as :func:`decode` does.
    """

    def read(name: bytes) -> tuple[np.ndarray, np.int32, np.bool_]:
        return _for_graph(*read_checked(name, within))

    return _decode_checked(*_header_op(read, path))


def decode(contents: tf.Tensor, max_pixels: int = MAX_PIXELS) -> tf.Tensor:
    """An image file's bytes as an upright uint8 ``[height, width, 3]`` tensor.

    Works eagerly and inside ``tf.data`` maps. Greyscale, palette and CMYK images
    become RGB, alpha is dropped, 16-bit images are scaled to 8 bits, an animation
    gives its first frame, and the EXIF orientation is applied as Pillow's
    ``ImageOps.exif_transpose`` applies it. Raises ``tf.errors.InvalidArgumentError``
    (in a graph) when the bytes are not an image TensorFlow or Pillow can read, or the
    header says it has more than ``max_pixels`` (:func:`read_header`, before any
    decoder runs).
    """

    def check(data: bytes | np.ndarray) -> tuple[np.ndarray, np.int32, np.bool_]:
        data = _as_bytes(data)
        return _for_graph(data, read_header(data, max_pixels))

    return _decode_checked(*_header_op(check, contents))


# Python functions called by tf.numpy_function: a ValueError becomes TensorFlow's
# InvalidArgumentError, as its own decoders raise; bytes travel as 0-d object arrays
# (as bytes, numpy would drop trailing zero bytes, and BMP pixel rows often end so).


def _header_op(
    function: Callable[[Any], tuple[np.ndarray, np.int32, np.bool_]], given: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    unconverted = tf.autograph.experimental.do_not_convert(function)
    contents, orientation, pillow = tf.numpy_function(unconverted, [given], _HEADER_TYPES)
    return tf.reshape(contents, ()), tf.reshape(orientation, ()), tf.reshape(pillow, ())


def _for_graph(data: bytes, header: Header) -> tuple[np.ndarray, np.int32, np.bool_]:
    return np.array(data, dtype=object), np.int32(header.orientation), np.bool_(_by_pillow(header))


def _by_pillow(header: Header) -> bool:
    """Whether Pillow decodes it although TensorFlow reads the format.

    TensorFlow turns CMYK JPEGs into RGB with other rounding than Pillow's, and reads
    16-bit greyscale only in PNGs; Pillow reads every 16-bit greyscale the same way.
    """
    return (header.format == "JPEG" and header.mode == "CMYK") or header.mode in SIXTEEN_BIT_GREY


def _as_bytes(contents: bytes | np.ndarray) -> bytes:
    # bytes in a graph, a 0-d object array eagerly. (np.asarray(bytes) would drop
    # trailing zero bytes, and BMP pixel rows often end with them.)
    return contents.item() if isinstance(contents, np.ndarray) else contents


def _decode_checked(contents: tf.Tensor, orientation: tf.Tensor, pillow: tf.Tensor) -> tf.Tensor:
    def jpeg() -> tf.Tensor:
        # decode_image would use libjpeg's fast integer DCT, off from Pillow at block
        # edges; the accurate one matches Pillow exactly.
        pixels = tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE")
        return upright(pixels, orientation)

    def png() -> tf.Tensor:
        return upright(tf.io.decode_png(contents, channels=3), orientation)

    def by_pillow() -> tf.Tensor:  # BMP, WebP, TIFF, every other format, and the above
        # Turned upright by Pillow itself: its TIFF decoder turns them as it loads.
        return tf.numpy_function(_decode_with_pillow, [contents], tf.uint8, stateful=False)

    png_bytes = tf.strings.substr(contents, 0, 4) == b"\x89PNG"
    image = tf.case(
        [(pillow, by_pillow), (tf.io.is_jpeg(contents), jpeg), (png_bytes, png)],
        default=by_pillow,
    )
    image.set_shape((None, None, 3))
    return image


def _decode_with_pillow(contents: bytes | np.ndarray) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    # An animation (GIF, WebP, TIFF pages) opens on its first frame.
    try:
        with Image.open(io.BytesIO(_as_bytes(contents))) as image:
            return as_rgb(image)
    # ValueError becomes InvalidArgumentError in a graph, like TensorFlow's decoders.
    except UnidentifiedImageError as exc:
        unknown = "Unknown image file format: neither TensorFlow nor Pillow reads it"
        raise ValueError(unknown) from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError...
        raise ValueError(f"Pillow cannot decode it: {exc}") from exc


def as_rgb(image: PIL.Image.Image) -> np.ndarray:
    """A Pillow image's pixels as zoo decodes them: upright, uint8 ``[height, width, 3]``.

    ``ImageOps.exif_transpose`` then ``convert("RGB")``, except for 16-bit greyscale,
    whose values are scaled to 8 bits (the high byte) as TensorFlow scales a 16-bit PNG.
    """
    from PIL import ImageOps

    turned = ImageOps.exif_transpose(image)
    if turned.mode in SIXTEEN_BIT_GREY:
        grey = (np.asarray(turned) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(turned.convert("RGB"))


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
        read_header(data, within.pixels)  # decode checks too; this says why plainly
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
