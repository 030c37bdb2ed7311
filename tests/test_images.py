"""Reading image files: every format and mode becomes RGB, unreadable files say why.

``write_images`` is also used by ``test_image_folder.py`` to fill class folders.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.data import images
from zoo.data.files import IMAGE_EXTENSIONS, find_files, is_image_name

#: Two flat colours side by side, so lossy formats stay close to the source.
LEFT, RIGHT = (200, 40, 60), (30, 160, 220)
WIDTH, HEIGHT = 24, 16


def picture(left: tuple[int, int, int] = LEFT, right: tuple[int, int, int] = RIGHT) -> Image.Image:
    pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    pixels[:, : WIDTH // 2], pixels[:, WIDTH // 2 :] = left, right
    return Image.fromarray(pixels)


def _palette(image: Image.Image) -> Image.Image:
    # An adaptive palette keeps both colours exact (the default web palette dithers).
    return image.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)


def _animated(path: Path) -> None:
    first, second = picture(LEFT, LEFT), picture(RIGHT, RIGHT)
    first.save(path, save_all=True, append_images=[second], duration=100)


def _grey16(path: Path) -> None:
    grey = np.asarray(picture().convert("L")).astype(np.uint16) * 257  # 0..65535
    Image.fromarray(grey).save(path)  # mode I;16


def _truncated(kind: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        picture().save(path, format=kind)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return write


#: Readable files of every format and mode zoo reads, and how each is written.
GOOD: dict[str, Callable[[Path], None]] = {
    "rgb.jpg": lambda p: picture().save(p, quality=95),
    "grey.jpg": lambda p: picture().convert("L").save(p, quality=95),
    "cmyk.jpg": lambda p: picture().convert("CMYK").save(p, quality=95),
    "progressive.jpeg": lambda p: picture().save(p, quality=95, progressive=True),
    "rgb.png": lambda p: picture().save(p),
    "grey.png": lambda p: picture().convert("L").save(p),
    "grey_alpha.png": lambda p: picture().convert("LA").save(p),
    "rgba.png": lambda p: picture().convert("RGBA").save(p),
    "palette.png": lambda p: _palette(picture()).save(p),
    "palette_transparent.png": lambda p: _palette(picture()).save(p, transparency=0),
    "grey16.png": _grey16,
    "rgb.bmp": lambda p: picture().save(p),
    "grey.bmp": lambda p: picture().convert("L").save(p),
    "palette.bmp": lambda p: _palette(picture()).save(p),
    "one_bit.bmp": lambda p: picture().convert("1", dither=Image.Dither.NONE).save(p),
    "palette.gif": lambda p: _palette(picture()).save(p),
    "grey.GIF": lambda p: picture().convert("L").save(p, format="GIF"),
    "animated.gif": _animated,
    "png_named.jpg": lambda p: picture().save(p, format="PNG"),
    # Formats TensorFlow does not read: Pillow decodes them, in tf.data as eagerly.
    "rgb.webp": lambda p: picture().save(p, lossless=True),
    "lossy.webp": lambda p: picture().save(p, quality=95),
    "rgb.tiff": lambda p: picture().save(p),
    "cmyk.tif": lambda p: picture().convert("CMYK").save(p),
    "rgba.tif": lambda p: picture().convert("RGBA").save(p, compression="tiff_lzw"),
    "rgb.ppm": lambda p: picture().save(p),
    "grey.pgm": lambda p: picture().convert("L").save(p),
    "rgb.tga": lambda p: picture().save(p),
    "rgb.qoi": lambda p: picture().save(p),
    "rgb.ico": lambda p: picture().save(p, sizes=[(WIDTH, HEIGHT)]),
    "rgb.jp2": lambda p: picture().save(p, irreversible=False),
    "rgb.pcx": lambda p: picture().save(p),
    "rgb.sgi": lambda p: picture().save(p),
    "rgb.avif": lambda p: picture().save(p, quality=100),
    "rgb.apng": lambda p: picture().save(p, format="PNG"),
    "rgb.dib": lambda p: picture().save(p),
    "rgb.j2k": lambda p: picture().save(p),
    "rgb.jfif": lambda p: picture().save(p, format="JPEG", quality=95),
    "rgb.jpe": lambda p: picture().save(p, format="JPEG", quality=95),
    "one_bit.pbm": lambda p: picture().convert("1", dither=Image.Dither.NONE).save(p),
    "rgb.pnm": lambda p: picture().save(p),
}

#: Files with an image's name that cannot be read, and what the reason mentions.
BAD: dict[str, tuple[Callable[[Path], None], str]] = {
    "empty.jpg": (lambda p: p.write_bytes(b""), "empty"),
    "truncated.jpg": (_truncated("JPEG"), "its header does not read: Truncated File Read"),
    "truncated.png": (_truncated("PNG"), "PNG"),
    "truncated.bmp": (_truncated("BMP"), "truncated"),
    "text.jpg": (lambda p: p.write_text("not an image\n"), "Unknown image file format"),
    "truncated.webp": (_truncated("WEBP"), "its header does not read"),
}

#: Files that are not images by their name.
OTHERS: dict[str, bytes] = {
    # The start of an OLE compound file, which is what Windows' Thumbs.db is.
    "Thumbs.db": bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504),
    "notes.txt": b"taken in 2024\n",
}

COLOURFUL = [
    "rgb.jpg", "cmyk.jpg", "rgb.png", "rgba.png", "palette.png", "rgb.bmp", "palette.gif",
    "rgb.webp", "lossy.webp", "rgb.tiff", "cmyk.tif", "rgb.avif", "rgb.jp2",
]  # fmt: skip


def write_images(folder: Path, good: bool = True, bad: bool = True, others: bool = True) -> None:
    """Fill ``folder`` with the files above."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, write in GOOD.items() if good else ():
        write(folder / name)
    for name, (write, _) in BAD.items() if bad else ():
        write(folder / name)
    for name, data in OTHERS.items() if others else ():
        (folder / name).write_bytes(data)


def as_pillow_sees_it(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("name", sorted(GOOD))
def test_every_format_and_mode_becomes_rgb_uint8(isolated: Path, name: str):
    path = isolated / name
    GOOD[name](path)

    pixels = images.read_image(path)

    assert pixels.dtype == np.uint8 and pixels.shape == (HEIGHT, WIDTH, 3)
    if name != "grey16.png":  # Pillow clips 16-bit greyscale (checked below)
        # JPEG decoders may round differently; Pillow reads the others itself.
        lossy = Path(name).suffix.lower() in {".jpg", ".jpeg", ".jfif", ".jpe"}
        lossy = lossy and name != "png_named.jpg"
        tolerance = 4 if lossy else 0
        difference = np.abs(pixels.astype(int) - as_pillow_sees_it(path))
        assert difference.max() <= tolerance


@pytest.mark.parametrize("name", COLOURFUL)
def test_colour_images_keep_their_colours(isolated: Path, name: str):
    GOOD[name](isolated / name)

    pixels = images.read_image(isolated / name).astype(int)

    assert np.abs(pixels[HEIGHT // 2, 2] - LEFT).max() <= 6
    assert np.abs(pixels[HEIGHT // 2, -3] - RIGHT).max() <= 6


def test_sixteen_bit_png_is_scaled_to_eight_bits(isolated: Path):
    _grey16(isolated / "grey16.png")

    pixels = images.read_image(isolated / "grey16.png")

    grey = np.asarray(picture().convert("L"))
    np.testing.assert_array_equal(pixels, np.repeat(grey[..., None], 3, axis=2))


def test_an_animated_gif_gives_its_first_frame(isolated: Path):
    _animated(isolated / "animated.gif")

    pixels = images.read_image(isolated / "animated.gif").astype(int)

    assert np.abs(pixels - LEFT).max() <= 2


def test_a_palette_bmp_keeps_its_colours_where_tensorflow_alone_would_not(isolated: Path):
    import tensorflow as tf

    _palette(picture()).save(isolated / "palette.bmp")
    contents = tf.io.read_file(str(isolated / "palette.bmp"))

    ours = images.decode(contents).numpy()
    tensorflows = tf.io.decode_image(contents, channels=3).numpy()

    np.testing.assert_array_equal(ours, as_pillow_sees_it(isolated / "palette.bmp"))
    assert not np.array_equal(tensorflows, ours)  # palette indices read as grey levels


@pytest.mark.parametrize("name", sorted(BAD))
def test_unreadable_files_raise_and_say_why(isolated: Path, name: str):
    write, reason = BAD[name]
    write(isolated / name)

    with pytest.raises(images.UnreadableImage, match=reason) as caught:
        images.read_image(isolated / name)

    assert caught.value.path == isolated / name
    assert "function_node" not in str(caught.value) and "[Op:" not in str(caught.value)


def test_a_missing_file_is_unreadable(isolated: Path):
    with pytest.raises(images.UnreadableImage, match="No such file"):
        images.read_image(isolated / "gone.jpg")


def test_the_parallel_check_finds_exactly_what_read_image_rejects(isolated: Path):
    write_images(isolated, others=False)
    files = find_files(isolated).images

    unreadable = images.find_unreadable(files)

    assert {p.name for p in unreadable} == set(BAD)
    for path, reason in unreadable.items():
        with pytest.raises(images.UnreadableImage) as caught:
            images.read_image(path)
        assert reason == caught.value.reason


def test_the_parallel_check_finds_unreadable_files_in_every_batch_of_its_answers(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(images, "_INDEX_BATCH", 4)  # 10 files: three batches of answers
    files = []
    for i in range(10):
        path = isolated / f"{i:02}.png"
        if i in (0, 5, 9):
            path.write_bytes(b"not a picture")
        else:
            picture().save(path)
        files.append(path)

    unreadable = images.find_unreadable(files)

    assert sorted(p.name for p in unreadable) == ["00.png", "05.png", "09.png"]


def test_tf_data_decodes_exactly_like_read_image(isolated: Path):
    import tensorflow as tf

    write_images(isolated, bad=False, others=False)
    files = [str(p) for p in find_files(isolated).images]

    decoded = tf.data.Dataset.from_tensor_slices(files).map(
        lambda path: images.decode(tf.io.read_file(path)), num_parallel_calls=4
    )

    for path, pixels in zip(files, decoded.as_numpy_iterator(), strict=True):
        np.testing.assert_array_equal(pixels, images.read_image(path), err_msg=path)


def test_find_files_is_sorted_recursive_and_leaves_out_hidden_files(isolated: Path):
    for name in ["b/2.png", "a/10.JPG", "a/9.jpeg", "a/Thumbs.db", ".hidden/x.jpg", "a/.DS_Store"]:
        (isolated / name).parent.mkdir(parents=True, exist_ok=True)
        (isolated / name).write_bytes(b"")

    found = find_files(isolated)

    assert [p.relative_to(isolated).as_posix() for p in found.images] == [
        "a/10.JPG",
        "a/9.jpeg",
        "b/2.png",
    ]
    assert [p.name for p in found.others] == ["Thumbs.db"]
    assert is_image_name("photo.PNG") and is_image_name("photo.webp")
    assert not is_image_name("notes.txt") and not is_image_name("model.h5")


def test_every_image_ending_is_a_format_pillow_opens_by_itself():
    from PIL import Image

    Image.init()
    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}

    assert set(IMAGE_EXTENSIONS) <= readable
    # ... and a file of each is read by the tests above.
    assert {Path(name).suffix.lower() for name in GOOD} >= set(IMAGE_EXTENSIONS)


def test_prediction_finds_in_a_folder_exactly_the_images_training_reads(isolated: Path):
    from zoo.results.predict import find_images

    write_images(isolated)

    files, missing = find_images([isolated])

    assert {p.name for p in files} == set(GOOD) | set(BAD) and not missing  # not OTHERS
    assert {p.name for p in files} == {p.name for p in find_files(isolated).images}


def test_listing_images_loads_no_tensorflow(isolated: Path):
    """A dataset's metadata and zoo predict's checks of its paths list folders before
    TensorFlow loads: zoo.image_files is zoo.data.files, apart from the decoder."""
    import subprocess
    import sys

    write_images(isolated)
    code = (
        "import sys, zoo; found = zoo.image_files('.').images; "
        "loaded = {m.split('.')[0] for m in sys.modules}; "
        "print(len(found), sorted(loaded & {'tensorflow', 'keras'}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=isolated, capture_output=True, text=True, timeout=120
    )

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(maxsplit=1) == [str(len(find_files(isolated).images)), "[]\n"]
