"""EXIF orientation: photos are turned upright as Pillow's ``exif_transpose`` turns them,
in training, ``zoo predict`` and ``zoo evaluate`` alike; and every colour mode decodes as
the README's Pillow snippet decodes it.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import run_zoo
from PIL import Image, ImageOps
from test_predict import shape_image, train_tiny

import zoo
from zoo.data import images

zoo.load_registry(zoo.LoadOptions(builtins_only=True))  # imports zoo.builtins.*
IMAGE_FOLDER = importlib.import_module("zoo.builtins.image_folder")
README = Path(__file__).parents[1] / "README.md"
#: Stored pixels: 5 rows of 7, every pixel different, so each turn gives other arrays.
STORED = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
#: Lossless formats, so the stored pixels come back exactly; JPEG is lossy but its
#: decoders agree, so it is compared with Pillow's reading of the same file.
FORMATS = {"png": {}, "jpg": {"quality": 95}, "webp": {"lossless": True}, "tiff": {}}


def exif(orientation: int) -> bytes:
    tags = Image.Exif()
    tags[0x0112] = orientation
    return tags.tobytes()


def as_pillow_turns_it(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def stored_sideways(upright: np.ndarray) -> np.ndarray:
    """What a phone held sideways stores for ``upright``: turned a quarter anticlockwise,
    with orientation 6 saying to turn it a quarter clockwise."""
    return np.rot90(upright, 1)


# Orientation 1 to 8, decoded ------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_each_orientation_is_turned_as_exif_transpose_turns_it(
    isolated: Path, suffix: str, orientation: int
):
    path = isolated / f"o{orientation}.{suffix}"
    Image.fromarray(STORED).save(path, exif=exif(orientation), **FORMATS[suffix])

    pixels = images.read_image(path)

    np.testing.assert_array_equal(pixels, as_pillow_turns_it(path))
    assert pixels.shape == ((7, 5, 3) if orientation >= 5 else (5, 7, 3))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tf_data_turns_each_orientation_as_read_image_does(isolated: Path, orientation: int):
    import tensorflow as tf

    path = isolated / "photo.png"
    Image.fromarray(STORED).save(path, exif=exif(orientation))
    names = tf.data.Dataset.from_tensor_slices([str(path)])

    [pixels] = names.map(lambda p: zoo.decode_image_file(p, zoo.image_limits()))

    np.testing.assert_array_equal(pixels.numpy(), as_pillow_turns_it(path))


def test_an_xmp_orientation_counts_as_pillow_counts_it(isolated: Path):
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="8"/></x:xmpmeta>'
    Image.fromarray(STORED).save(isolated / "xmp.jpg", quality=95, xmp=xmp)

    pixels = images.read_image(isolated / "xmp.jpg")

    assert pixels.shape == (7, 5, 3)
    np.testing.assert_array_equal(pixels, as_pillow_turns_it(isolated / "xmp.jpg"))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_png_whose_exif_follows_its_pixels_is_turned(isolated: Path):
    buffer = io.BytesIO()
    Image.fromarray(STORED).save(buffer, format="PNG")
    data = buffer.getvalue()
    end = data.rindex(b"IEND") - 4  # the IEND chunk starts with its length
    late = data[:end] + png_chunk(b"eXIf", exif(6)[6:]) + data[end:]  # no "Exif\0\0" in PNG
    (isolated / "late.png").write_bytes(late)

    pixels = images.read_image(isolated / "late.png")

    np.testing.assert_array_equal(pixels, np.rot90(STORED, -1))
    np.testing.assert_array_equal(pixels, as_pillow_turns_it(isolated / "late.png"))


#: EXIF blocks that do not say a usable orientation: all mean the pixels as stored.
GARBLED: dict[str, Callable[[], bytes]] = {
    "not TIFF inside": lambda: b"Exif\x00\x00" + bytes(range(40)),
    "cut short": lambda: exif(6)[:14],
    "orientation 0": lambda: exif(0),
    "orientation 9": lambda: exif(9),
    "orientation 65535": lambda: exif(65535),
    "a huge IFD count": lambda: b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + bytes(30),
}


@pytest.mark.parametrize("name", sorted(GARBLED))
def test_a_garbled_exif_block_leaves_the_pixels_as_stored(isolated: Path, name: str):
    Image.fromarray(STORED).save(isolated / "garbled.png", exif=GARBLED[name]())

    pixels = images.read_image(isolated / "garbled.png")

    np.testing.assert_array_equal(pixels, STORED)
    assert zoo.find_unreadable([isolated / "garbled.png"]) == {}


# Training, predict and evaluate see the same upright picture ----------------------------


def upright_and_sideways(folder: Path, shape: str, seed: int) -> np.ndarray:
    """``shape``'s picture as ``upright.png`` and as ``sideways.png`` (orientation 6)."""
    folder.mkdir(parents=True, exist_ok=True)
    upright = shape_image(shape, size=(50, 50), seed=seed)[:, :37]  # not square
    Image.fromarray(upright).save(folder / "upright.png")
    Image.fromarray(stored_sideways(upright)).save(folder / "sideways.png", exif=exif(6))
    return upright


def test_the_training_pipeline_yields_photos_upright(isolated: Path):
    for name in ("a", "b"):
        for seed in range(10):
            upright_and_sideways(isolated / "data" / name / str(seed), "circle", seed)

    splits = IMAGE_FOLDER.build({"path": str(isolated / "data"), "seed": 0})

    by_name = dict(zip(splits.files["test"], splits.test.as_numpy_iterator(), strict=True))
    for name, (pixels, _) in by_name.items():
        twin = name.replace("sideways", "upright") if "sideways" in name else name
        np.testing.assert_array_equal(pixels, images.read_image(twin))
        assert pixels.shape[:2] == (50, 37)


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs"), ["shapes", "small_cnn", "gap_sigmoid"])


def test_zoo_predict_gives_a_sideways_photo_its_upright_twins_answer(
    binary_run: Path, isolated: Path
):
    for seed in range(3):
        upright_and_sideways(isolated / "photos" / str(seed), "triangle", seed)

    result = run_zoo("predict", str(binary_run), str(isolated / "photos"), "--json")

    assert result.exit_code == 0, result.stderr
    answers = {p["file"]: p["top_k"] for p in result.json()["predictions"]}
    assert len(answers) == 6
    for seed in range(3):
        folder = isolated / "photos" / str(seed)
        assert answers[str(folder / "sideways.png")] == answers[str(folder / "upright.png")]


def test_zoo_evaluate_scores_sideways_photos_as_their_upright_twins(
    zoo_cli, binary_run: Path, isolated: Path
):
    for shape in ("circle", "square"):
        for seed in range(2):
            upright_and_sideways(isolated / "mixed" / shape / str(seed), shape, seed)
    for kind in ("upright", "sideways"):
        for picture in (isolated / "mixed").rglob(f"{kind}.png"):
            target = isolated / kind / picture.relative_to(isolated / "mixed")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(picture.read_bytes())

    upright, sideways = (
        zoo_cli("evaluate", str(binary_run), str(isolated / kind), "--json").json()["evaluation"]
        for kind in ("upright", "sideways")
    )

    assert upright["examples"] == sideways["examples"] == 4
    for evaluation in (upright, sideways):  # where the files are differs, nothing else
        evaluation.pop("name"), evaluation.pop("figure", None)
        for mistake in evaluation["mistakes"]:
            mistake["file"] = Path(mistake["file"]).relative_to(isolated).parts[1:-1]
    assert upright == sideways


# Image checks and features cached by an earlier decoder ---------------------------------


def test_image_checks_cached_by_an_earlier_decoder_are_made_again(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    for name in ("a", "b"):
        for seed in range(5):
            upright_and_sideways(isolated / "data" / name / str(seed), "circle", seed)
    first = IMAGE_FOLDER.build({"path": str(isolated / "data"), "seed": 0})
    (cache,) = (isolated / ".zoo-cache" / "image_folder").iterdir()
    as_version_2_wrote_it(cache)
    decoded: list[Path] = []
    find_unreadable = zoo.find_unreadable
    monkeypatch.setattr(zoo, "find_unreadable", lambda p: decoded.extend(p) or find_unreadable(p))

    again = IMAGE_FOLDER.build({"path": str(isolated / "data"), "seed": 0})

    assert len(decoded) == 20 and again.skipped == first.skipped == 0
    assert json.loads(cache.read_text())["decoder"].startswith(f"{zoo.IMAGE_DECODER_VERSION}/")


def as_version_2_wrote_it(cache: Path) -> None:
    """The cache as zoo wrote it before EXIF orientation: decoder 2, a file marked
    unreadable (a verdict version 3 would not give), its SHA-256 right."""
    data = json.loads(cache.read_text())
    data["decoder"] = re.sub(r"^[^/]+/", "2/", data["decoder"])
    data["files"][sorted(data["files"])[0]][2] = "verdict of decoder 2"
    data["sha256"] = IMAGE_FOLDER._digest(data["files"])
    cache.write_text(json.dumps(data))


def test_features_cached_by_an_earlier_decoder_are_not_reused(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    for name in ("a", "b"):
        for seed in range(5):
            upright_and_sideways(isolated / "data" / name / str(seed), "circle", seed)
    now = IMAGE_FOLDER.build({"path": str(isolated / "data"), "seed": 0}).fingerprint
    monkeypatch.setattr(zoo, "IMAGE_DECODER_VERSION", "2")

    before = IMAGE_FOLDER.build({"path": str(isolated / "data"), "seed": 0}).fingerprint

    assert before != now  # cached features are keyed by the fingerprint


def test_a_run_rechecks_images_an_earlier_zoo_judged(isolated: Path):
    for name in ("a", "b"):
        for seed in range(5):
            upright_and_sideways(isolated / "data" / name / str(seed), "circle", seed)
    run = ["run", "image_folder", "small_cnn", "gap_sigmoid", "--epochs", "1"]
    run += ["--image-size", "32", "--batch-size", "8", "--json"]
    run += ["--set", f"dataset.path={isolated / 'data'}"]
    IMAGE_FOLDER.build({"path": str(isolated / "data"), "seed": 0})
    (cache,) = (isolated / ".zoo-cache" / "image_folder").iterdir()
    as_version_2_wrote_it(cache)

    result = run_zoo(*run)

    assert result.exit_code == 0, result.stderr
    assert "verdict of decoder 2" not in result.stderr + cache.read_text()
    metrics = json.loads((Path(result.json()["run_dir"]) / "metrics.json").read_text())
    assert metrics["dataset"]["sizes"] == {"train": 16, "validation": 2, "test": 2}


# Every colour mode, as the README's Pillow snippet reads it -----------------------------


def readme_snippet() -> Callable[[str | Path], np.ndarray]:
    """The README's Python block that reads an image with Pillow as zoo does."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    [source] = [block for block in blocks if "def read_rgb(" in block]
    namespace: dict[str, object] = {}
    exec(compile(source, "README.md", "exec"), namespace)  # our own README's code
    return namespace["read_rgb"]  # type: ignore[return-value]  # defined by the block


def encoded_by_tensorflow(pixels: np.ndarray) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import tensorflow as tf

        path.write_bytes(tf.io.encode_png(tf.constant(pixels)).numpy())

    return write


SIXTEEN = np.random.default_rng(1).integers(0, 65536, (5, 7, 4), dtype=np.uint16)
EIGHT = np.random.default_rng(2).integers(0, 256, (5, 7, 4), dtype=np.uint8)
#: Every mode Pillow or TensorFlow gives a file, and how each is written.
MODES: dict[str, Callable[[Path], None]] = {
    "grey16.png": lambda p: Image.fromarray(SIXTEEN[..., 0]).save(p),  # I;16
    "grey16_turned.png": lambda p: Image.fromarray(SIXTEEN[..., 0]).save(p, exif=exif(6)),
    "grey16.tiff": lambda p: Image.fromarray(SIXTEEN[..., 0]).save(p),
    "rgb16.png": encoded_by_tensorflow(SIXTEEN[..., :3]),
    "rgba16.png": encoded_by_tensorflow(SIXTEEN),
    "grey_alpha16.png": encoded_by_tensorflow(SIXTEEN[..., :2]),
    "grey.png": lambda p: Image.fromarray(EIGHT[..., 0]).save(p),
    "grey_alpha.png": lambda p: Image.fromarray(EIGHT[..., :2], "LA").save(p),
    "rgba.png": lambda p: Image.fromarray(EIGHT).save(p),
    "one_bit.png": lambda p: Image.fromarray(EIGHT[..., 0] > 127).save(p),
    "palette_transparent.png": lambda p: (
        Image.fromarray(EIGHT[..., :3]).quantize(8).save(p, transparency=2)
    ),
    "palette_transparent.gif": lambda p: (
        Image.fromarray(EIGHT[..., :3]).quantize(8).save(p, transparency=2)
    ),
    "cmyk.jpg": lambda p: Image.fromarray(EIGHT, "CMYK").save(p, quality=95),
    "cmyk_turned.jpg": lambda p: Image.fromarray(EIGHT, "CMYK").save(p, exif=exif(8)),
    "grey.jpg": lambda p: Image.fromarray(EIGHT[..., 0]).save(p, quality=95),
    "int32.tiff": lambda p: Image.fromarray(SIXTEEN[..., 0].astype(np.int32) - 300).save(p),
    "float.tiff": lambda p: Image.fromarray(EIGHT[..., 0].astype(np.float32) * 1.5).save(p),
}


@pytest.mark.parametrize("name", sorted(MODES))
def test_every_mode_decodes_as_the_readmes_pillow_snippet_decodes_it(isolated: Path, name):
    MODES[name](isolated / name)

    pixels = images.read_image(isolated / name)

    np.testing.assert_array_equal(pixels, readme_snippet()(isolated / name))


def test_sixteen_bit_grey_keeps_its_shades_in_every_format(isolated: Path):
    for name in ("grey16.png", "grey16.tiff"):
        MODES[name](isolated / name)

    png, tiff = (images.read_image(isolated / n)[..., 0] for n in ("grey16.png", "grey16.tiff"))

    np.testing.assert_array_equal(png, SIXTEEN[..., 0] >> 8)  # not clipped to white
    np.testing.assert_array_equal(tiff, png)
