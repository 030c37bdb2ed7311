"""Image files made to hang zoo or exhaust its memory: skipped and named, never read.

A named pipe called ``x.png`` blocks whoever opens it for reading; a link to
``/dev/zero`` called ``z.png`` never ends; a 390 KB PNG of 20000x20000 pixels decodes to
1.2 GB, and a JPEG whose header claims 65000x65000 to 12.7 GB. Every ``zoo`` command
runs in a subprocess with a hard timeout and a cap on its address space, so on code
that opens them the test fails instead of hanging or swapping the machine.
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest
from helpers import colour_folder, zoo_executable
from PIL import Image

import zoo

#: Seconds a command may take on a loaded two-core machine: it takes 10-20 alone.
TIMEOUT = 120
#: The address space a command may use: room for TensorFlow and a tiny model (``zoo
#: run`` needs more than 2 GiB of it), none for the huge PNG (1.2 GB decoded, four times
#: that resized as floats) nor for /dev/zero, which never ends.
MEMORY = 4 * 2**30
#: The hostile files, and what their reason says.
HOSTILE = {
    "x.png": "named pipe",
    "z.png": "character device",
    "huge.png": "over the limit",
    "huge.jpg": "over the limit",
}
TINY_RUN = ["--epochs", "1", "--image-size", "32", "--batch-size", "8"]

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(path: Path, side: int = 20_000) -> None:
    """A black greyscale PNG of ``side`` x ``side`` pixels, compressed row by row.

    20000 x 20000 is a 390 KB file; decoded to RGB, as zoo decodes, it is 1.2 GB.
    """
    compressor = zlib.compressobj(9)
    row = bytes(1 + side)  # filter byte 0, then black pixels
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat)
    path.write_bytes(png + _chunk(b"IEND", b""))


def huge_jpeg(path: Path, side: int = 65_000) -> None:
    """A small JPEG whose frame header (SOF0) claims ``side`` x ``side`` pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 120, 200)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")  # marker, length (2 bytes), precision, height, width
    data[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``huge.png`` and ``huge.jpg``, written once (the PNG's zlib takes seconds)."""
    folder = tmp_path_factory.mktemp("bombs")
    huge_png(folder / "huge.png")
    huge_jpeg(folder / "huge.jpg")
    return folder


def add_hostile(folder: Path, bombs: Path) -> None:
    """The four hostile files of :data:`HOSTILE`, in ``folder``."""
    os.mkfifo(folder / "x.png")
    (folder / "z.png").symlink_to("/dev/zero")
    for name in ("huge.png", "huge.jpg"):
        shutil.copyfile(bombs / name, folder / name)


def limited() -> None:
    """In the child: SIGINT as from a terminal, and at most :data:`MEMORY` of memory."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def zoo_limited(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``zoo ARGS`` in a subprocess under :data:`TIMEOUT` and :data:`MEMORY`."""
    return subprocess.run(
        [zoo_executable(), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        preexec_fn=limited,
        env={**os.environ, **(env or {})},
    )


def reasons(entries: Sequence[dict[str, str]], key: str) -> dict[str, str]:
    return {Path(entry["file"]).name: entry[key] for entry in entries}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained on clean red and green images (in this process)."""
    folder = colour_folder(tmp_path_factory.mktemp("clean"), {"red": 10, "green": 10})
    registry = zoo.load_registry(zoo.LoadOptions(builtins_only=True))
    resolved = zoo.resolve_run(
        registry,
        ["image_folder", "small_cnn", "gap_sigmoid"],
        settings={"epochs": 1, "image_size": 32, "batch_size": 8},
        sets=[f"dataset.path={folder}"],
    )
    run_dir = zoo.run(resolved, output=tmp_path_factory.mktemp("runs")).run_dir
    assert run_dir is not None
    return run_dir


@pytest.fixture
def hostile(isolated: Path, bombs: Path) -> Path:
    """Red and green images, with the hostile files among the red ones."""
    folder = colour_folder(isolated / "hostile", {"red": 10, "green": 10})
    add_hostile(folder / "red", bombs)
    return folder


def test_predict_names_each_hostile_file_and_predicts_the_rest(trained: Path, hostile: Path):
    good = hostile / "green" / "0.jpg"
    named = [hostile / "red" / name for name in HOSTILE]

    result = zoo_limited("predict", str(trained), str(good), *map(str, named), "--json")

    assert result.returncode == 1, result.stderr  # some files could not be read
    data = json.loads(result.stdout)
    assert [Path(p["file"]).name for p in data["predictions"]] == ["0.jpg"]
    errors = reasons(data["errors"], "error")
    assert set(errors) == set(HOSTILE)
    for name, words in HOSTILE.items():
        assert words in errors[name], errors


def test_predict_on_a_folder_skips_the_hostile_files(trained: Path, hostile: Path):
    result = zoo_limited("predict", str(trained), str(hostile / "red"), "--json")

    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    data = json.loads(result.stdout)
    assert len(data["predictions"]) == 10
    assert set(reasons(data["errors"], "error")) == set(HOSTILE)


def test_evaluate_on_a_folder_skips_the_hostile_files(trained: Path, hostile: Path):
    result = zoo_limited(
        "evaluate", str(trained), str(hostile), "--json", "--output", str(hostile.parent)
    )

    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    data = json.loads(result.stdout)
    assert data["evaluation"]["examples"] == 20
    errors = reasons(data["errors"], "error")
    assert set(errors) == set(HOSTILE)
    for name, words in HOSTILE.items():
        assert words in errors[name], errors
        assert str(hostile / "red" / name) in result.stderr  # named in the problems too


def test_training_skips_names_and_counts_the_hostile_files(hostile: Path):
    result = zoo_limited(
        "run", "image_folder", "small_cnn", "gap_sigmoid", *TINY_RUN, "--json",
        "--set", f"dataset.path={hostile}", "--output", str(hostile.parent / "runs"),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert f"skipped {len(HOSTILE)} unreadable files" in result.stderr
    metrics = json.loads((Path(json.loads(result.stdout)["run_dir"]) / "metrics.json").read_text())
    skipped = reasons(metrics["dataset"]["unreadable"], "reason")
    assert set(skipped) == set(HOSTILE)
    for name, words in HOSTILE.items():
        assert words in skipped[name], skipped
    assert sum(metrics["dataset"]["sizes"].values()) == 20


def test_a_pipe_swapped_in_after_the_check_is_refused_without_blocking(isolated: Path):
    os.mkfifo(isolated / "x.png")
    Image.new("RGB", (8, 8)).save(isolated / "real.png")
    script = """if True:
        import os, sys
        from zoo.data import limits
        stat = os.stat
        os.stat = lambda path, *args, **kwargs: stat(sys.argv[2])  # what the check saw
        try:
            limits.read_file(sys.argv[1])
        except limits.UnreadableImage as exc:
            print(exc.reason)
    """
    command = [sys.executable, "-c", script, str(isolated / "x.png"), str(isolated / "real.png")]

    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)

    assert "it is a named pipe (FIFO), not a regular file" in result.stdout, result.stderr


def test_a_lower_pixel_limit_skips_images_above_it(trained: Path, hostile: Path):
    image = hostile / "green" / "0.jpg"  # 16x16: 256 pixels

    result = zoo_limited(
        "predict", str(trained), str(image), "--json", env={"ZOO_MAX_IMAGE_PIXELS": "255"}
    )

    assert result.returncode == 1, result.stderr
    (error,) = json.loads(result.stdout)["errors"]
    assert "16x16 (256 pixels) is over the limit of 255" in error["error"]


def test_a_file_over_the_size_limit_is_never_read(trained: Path, hostile: Path):
    image = hostile / "green" / "0.jpg"

    result = zoo_limited(
        "predict", str(trained), str(image), "--json", env={"ZOO_MAX_IMAGE_BYTES": "100"}
    )

    assert result.returncode == 1, result.stderr
    (error,) = json.loads(result.stdout)["errors"]
    assert f"{image.stat().st_size} bytes, over the limit of 100" in error["error"]


@pytest.mark.parametrize("name", ["ZOO_MAX_IMAGE_PIXELS", "ZOO_MAX_IMAGE_BYTES"])
def test_a_limit_that_is_not_a_positive_whole_number_is_refused(
    trained: Path, isolated: Path, name: str
):
    Image.new("RGB", (8, 8)).save(isolated / "a.png")

    result = zoo_limited("predict", str(trained), str(isolated / "a.png"), env={name: "lots"})

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert name in result.stderr and repr("lots") in result.stderr


@pytest.mark.parametrize("name", ["ZOO_MAX_IMAGE_PIXELS", "ZOO_MAX_IMAGE_BYTES"])
@pytest.mark.parametrize("value", ["0", "-5", "1e9"])
def test_each_value_that_is_not_a_positive_whole_number_is_named(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
):
    """What ``zoo predict`` reads above, for the other kinds of bad value."""
    from zoo.data.limits import limits
    from zoo.errors import ZooError

    monkeypatch.setenv(name, value)

    with pytest.raises(ZooError) as raised:
        limits()

    assert name in raised.value.what and repr(value) in str(raised.value)


def test_an_animated_gif_counts_every_frame_tensorflow_decodes(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    """TensorFlow's GIF decoder holds all frames in memory, whichever it returns."""
    from zoo.data import images

    frames = [Image.new("L", (100, 100), 8 * i) for i in range(30)]
    frames[0].save(isolated / "many.gif", save_all=True, append_images=frames[1:])
    monkeypatch.setenv("ZOO_MAX_IMAGE_PIXELS", str(100 * 100 * 29))

    with pytest.raises(images.UnreadableImage, match="30 frames of 100x100"):
        images.read_image(isolated / "many.gif")
