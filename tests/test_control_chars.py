"""Text from files others made reaches the terminal without control characters.

Class names (folder names of a dataset), file names, run directories and registry
descriptions are printed with escape sequences shown as ``\\x1b``, never sent raw (a raw
one retitles the window or clears the screen), and ``[bold]`` in them is printed as it
is, not taken for rich markup. ``--json`` keeps the exact strings.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import Result, colour_folder, run_zoo, write

#: What a hostile name may carry: an OSC title change ended by BEL, a CSI "clear the
#: screen", rich markup, a C1 CSI (U+009B) and DEL. None holds "/": they are file names too.
TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
MARKUP = "[bold]x"
C1 = "\x9b31mred\x7f"
#: Two class names for image_folder, each a folder name.
CLASSES = [f"{TITLE}cat{CLEAR}", f"{MARKUP}{C1}dog"]
#: What must never reach a terminal raw: ESC, BEL, DEL and C1's CSI (as UTF-8).
RAW = [b"\x1b", b"\x07", b"\x7f", "\x9b".encode()]
TINY = ["--epochs", "1", "--image-size", "32", "--batch-size", "8"]


def assert_shown_safely(result: Result, escaped: bool = True) -> None:
    """No control character in either stream; with ``escaped``, ESC shown as ``\\x1b``."""
    shown = (result.stdout + result.stderr).encode()
    for raw in RAW:
        assert raw not in shown, f"{raw!r} reached the terminal:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert not escaped or "\\x1b" in result.stdout + result.stderr


def strings(data: object) -> list[str]:
    """Every string in parsed JSON ``data``, keys and values."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [*strings(list(data)), *strings(list(data.values()))]
    if isinstance(data, list):
        return [text for item in data for text in strings(item)]
    return []


def hostile_folder(root: Path) -> Path:
    """``root/<class>/...``: coloured images in two folders named like :data:`CLASSES`."""
    colour_folder(root, {"red": 12, "blue": 12})
    for colour, name in zip(("red", "blue"), CLASSES, strict=True):
        (root / colour).rename(root / name)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """A run of image_folder on :func:`hostile_folder`, and what ``zoo run`` printed."""
    root = tmp_path_factory.mktemp("hostile")
    folder = hostile_folder(root / "images")
    args = ["image_folder", "small_cnn", "gap_sigmoid", *TINY, "--output", str(root / "runs")]
    result = run_zoo(
        "run", *args, "--set", f"dataset.path={folder}", env={"ZOO_CACHE_DIR": str(root / "c")}
    )
    assert result.exit_code == 0, result.stderr
    (run_dir,) = (root / "runs").iterdir()
    return run_dir, result


def test_zoo_run_shows_hostile_class_names_safely_and_keeps_them_exact(trained):
    run_dir, result = trained

    assert_shown_safely(result)
    assert MARKUP in result.stdout + result.stderr  # the data summary's classes, as named
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert CLASSES[0] in strings(metrics) and CLASSES[1] in strings(metrics)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of shapes (classes circle and square), for hostile files to be given to."""
    root = tmp_path_factory.mktemp("plain")
    sets = ["dataset.num_images=40", "dataset.min_size=24", "dataset.max_size=40"]
    args = ["shapes", "small_cnn", "gap_sigmoid", *TINY, "--output", str(root)]
    result = run_zoo("run", *args, *(f"--set={s}" for s in sets))
    assert result.exit_code == 0, result.stderr
    (run_dir,) = root.iterdir()
    return run_dir


def predictable(folder: Path) -> Path:
    """Images named like hostile text, one that cannot be read among them."""
    colour_folder(folder, {"red": 2})
    (folder / "red" / "0.jpg").rename(folder / f"{TITLE}{MARKUP}.jpg")
    (folder / "red" / "1.png").rename(folder / f"{CLEAR}{C1}.png")
    (folder / f"{TITLE}broken.png").write_bytes(b"not a picture")
    shutil.rmtree(folder / "red")
    return folder


def test_zoo_predict_shows_hostile_file_names_safely(plain_run: Path, isolated: Path):
    photos = predictable(isolated / "photos")

    shown = run_zoo("predict", str(plain_run), str(photos))
    data = run_zoo("predict", str(plain_run), str(photos), "--json")

    assert shown.exit_code == data.exit_code == 1, shown.stderr  # one file is unreadable
    assert_shown_safely(shown)
    assert MARKUP in shown.stdout
    found = data.json()
    names = {Path(p["file"]).name for p in found["predictions"]}
    assert names == {f"{TITLE}{MARKUP}.jpg", f"{CLEAR}{C1}.png"}
    assert [Path(e["file"]).name for e in found["errors"]] == [f"{TITLE}broken.png"]


def test_zoo_evaluate_shows_hostile_file_names_safely(plain_run: Path, isolated: Path):
    folder = colour_folder(isolated / "labelled", {"red": 6, "blue": 6})
    for colour, name in (("red", "circle"), ("blue", "square")):
        (folder / colour).rename(folder / name)
    (folder / "circle" / "0.jpg").rename(folder / "circle" / f"{TITLE}{MARKUP}.jpg")
    (folder / "square" / f"{CLEAR}{C1}broken.png").write_bytes(b"not a picture")
    args = [str(plain_run), str(folder), "--output", str(isolated)]

    shown = run_zoo("evaluate", *args)
    data = run_zoo("evaluate", *args, "--json")

    assert shown.exit_code == 1, shown.stderr  # one file is unreadable
    assert_shown_safely(shown)
    assert str(folder / "square" / f"{CLEAR}{C1}broken.png") in strings(data.json())


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_model_with_hostile_class_names_loads_and_is_shown_safely(
    command: str, trained, isolated
):
    """zoo trained it from folders so named: it loads, and the terminal stays safe."""
    run_dir, _ = trained
    photos = predictable(isolated / "photos")
    args = [command, str(run_dir), *([str(photos)] if command == "predict" else [])]

    shown = run_zoo(*args)
    data = run_zoo(*args, "--json")

    assert_shown_safely(shown)
    assert "zoo.json" not in shown.stderr, shown.stderr  # the manifest is not refused
    assert set(strings(data.json())) & set(CLASSES), data.stdout


def test_zoo_compare_shows_a_hostile_run_directory_safely(plain_run: Path, isolated: Path):
    copy = shutil.copytree(plain_run, isolated / f"{TITLE}{MARKUP}{C1}")

    shown = run_zoo("compare", str(plain_run), str(copy), "--figure", "c.png")
    data = run_zoo("compare", str(plain_run), str(copy), "--figure", "d.png", "--json")

    assert shown.exit_code == 0, shown.stderr
    assert_shown_safely(shown)
    assert MARKUP in shown.stdout
    assert str(copy) in [run["path"] for run in data.json()["runs"]]


REGISTRY = f"""
[components.backbone.small_cnn]
description = {json.dumps(f"{TITLE}[bold]x[/]{CLEAR}{C1}")}

[recipes.hostile]
description = {json.dumps(f"{TITLE}[red]r[/]")}
dataset = "shapes"
backbone = "small_cnn"
head = "gap_sigmoid"
"""


@pytest.mark.parametrize("command", [["info", "small_cnn"], ["list"]])
def test_registry_descriptions_are_shown_safely(command: list[str], isolated: Path):
    write(isolated / "registry.toml", REGISTRY)

    shown = run_zoo(*command)
    data = run_zoo(*command, "--json")

    assert shown.exit_code == 0, shown.stderr
    assert_shown_safely(shown)
    assert "[bold]x[" in shown.stdout  # a narrow column may fold the rest
    assert f"{TITLE}[bold]x[/]{CLEAR}{C1}" in strings(data.json())


def test_errors_and_warnings_show_hostile_text_safely(isolated: Path):
    write(isolated / "registry.toml", REGISTRY.replace('"small_cnn"', json.dumps(CLEAR + MARKUP)))

    result = run_zoo("run", "--recipe", "hostile", env={"ZOO_DISABLE_PLUGINS": TITLE})

    assert result.exit_code == 2
    assert_shown_safely(result)
    assert MARKUP in result.stderr


def test_a_default_holding_brackets_is_shown_once_escaped(isolated: Path):
    """The defaults column was escaped twice: ``[big]`` showed as ``\\[big]``."""
    write(
        isolated / "registry.toml",
        '[components.dataset.image_folder]\ndefaults = {path = "[big]/x"}\n',
    )

    shown = run_zoo("list", "datasets")

    assert shown.exit_code == 0, shown.stderr
    assert "path=[big]/x" in shown.stdout
    assert "\\[big]" not in shown.stdout
