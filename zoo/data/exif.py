"""EXIF orientation: read from an image's header, applied to its decoded pixels.

A phone stores a portrait photo as landscape pixels and an EXIF tag (0x0112) saying how
to turn them. TensorFlow's decoders ignore the tag; zoo reads it with Pillow where each
file's header is already read (:func:`zoo.data.limits.read_header`, on every read, so
no cache of it can go stale) and turns what TensorFlow decoded with TensorFlow ops in
the same graph, so tf.data keeps decoding in parallel. (What Pillow decodes, Pillow's
``exif_transpose`` turns.) The result is ``PIL.ImageOps.exif_transpose``'s, pixel for
pixel, for the eight orientations:

====  ==========================  =================================
 tag  stored pixels are            turned by (Pillow's transpose)
====  ==========================  =================================
  1   upright                     nothing
  2   mirrored                    FLIP_LEFT_RIGHT
  3   upside down                 ROTATE_180
  4   mirrored, upside down       FLIP_TOP_BOTTOM
  5   mirrored, on their side     TRANSPOSE
  6   turned anticlockwise        ROTATE_270 (a quarter clockwise)
  7   mirrored, on their side     TRANSVERSE
  8   turned clockwise            ROTATE_90 (a quarter anticlockwise)
====  ==========================  =================================

A missing tag, a value outside 1..8 (``exif_transpose`` ignores those too) and an EXIF
block that does not parse all mean 1: the pixels as stored.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf
    from PIL.Image import Image

#: The EXIF tag holding the orientation.
ORIENTATION_TAG = 0x0112
#: What a PNG may carry after its pixel data that Pillow reads as EXIF or its
#: orientation: an eXIf chunk, ImageMagick's text chunk, XMP (keywords are stored plain).
_LATE_PNG_EXIF = re.compile(rb"eXIf|Raw profile type exif|XML:com\.adobe\.xmp")


def orientation(image: Image, data: bytes) -> int:
    """The EXIF orientation (1 to 8) of ``image``, opened from ``data`` by Pillow.

    Read as ``exif_transpose`` reads it (EXIF, then XMP's ``tiff:Orientation``), from
    the header: the pixels are not decoded, except for a PNG whose EXIF or XMP follows
    its pixel data, which Pillow reads only by decoding them.
    """
    import PIL.Image

    try:
        if image.format == "PNG" and not _after_pixels(data):
            # PngImageFile.getexif decodes the pixels to look past them; nothing is there.
            exif = PIL.Image.Image.getexif(image)
        else:
            exif = image.getexif()
        value = exif.get(ORIENTATION_TAG, 1)
    except Exception:  # garbled EXIF or XMP: Pillow raises struct.error, SyntaxError...
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _after_pixels(data: bytes) -> bool:
    return _LATE_PNG_EXIF.search(data, max(data.find(b"IDAT"), 0)) is not None


def upright(image: tf.Tensor, tag: tf.Tensor) -> tf.Tensor:
    """``image`` ``[height, width, channels]`` turned as EXIF orientation ``tag`` says.

    Works in a graph and eagerly; a ``tag`` outside 1..8 leaves the image as it is. No
    branches: tags 5 to 8 swap rows and columns, then each tag flips rows, columns or
    both (Pillow's seven transposes are these two steps).
    """
    import tensorflow as tf

    index = tf.where((tag >= 1) & (tag <= 8), tag - 1, 0)
    perm = tf.where(index >= 4, [1, 0, 2], [0, 1, 2])
    flips = tf.gather(_FLIPS, index)  # [flip rows, flip columns]
    return tf.reverse(tf.transpose(image, perm), tf.boolean_mask([0, 1], flips))


#: Per tag 1 to 8, after any swap: whether rows are flipped (upside down) and columns
#: (mirrored). 6 is ROTATE_270: swapped then mirrored; 8 is ROTATE_90: swapped then
#: upside down.
_FLIPS = (
    (False, False),
    (False, True),
    (True, True),
    (True, False),
    (False, False),
    (False, True),
    (True, True),
    (True, False),
)
