"""docs/deploy.md stays true: its example classifies without zoo, and its commands run.

``examples/deploy/classify.py`` runs on each kind of export in a process where importing
zoo, TensorFlow or Keras fails, and answers as ``zoo predict --json`` does on the same
folder and images, which are of other sizes than the training size, so the script's
resize is exercised.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run_process, run_zoo, write
from PIL import Image
from test_predict import shape_image, train_tiny

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "deploy" / "classify.py"
PAGE = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
HIDDEN = ("zoo", "tensorflow", "keras")
#: (run, zoo export's flags) for each kind of export the script handles.
EXPORTS = {
    "onnx": ("softmax", ["--format", "onnx"]),
    "litert": ("sigmoid", ["--format", "litert"]),
    "litert-int8-uint8": ("softmax", ["--format", "litert", "--quantize", "int8", "--io", "uint8"]),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A three-class softmax run and a two-class sigmoid run."""
    folder = tmp_path_factory.mktemp("runs")
    return {
        "softmax": train_tiny(
            folder,
            ["shapes", "small_cnn", "gap_softmax"],
            ["dataset.classes=circle,square,triangle"],
        ),
        "sigmoid": train_tiny(folder, ["shapes", "small_cnn", "gap_sigmoid"]),
    }


@pytest.fixture(scope="module", params=list(EXPORTS))
def export(request, runs, tmp_path_factory) -> Path:
    """A folder ``zoo export`` wrote, in its own process."""
    run, flags = EXPORTS[request.param]
    folder = tmp_path_factory.mktemp("exports") / request.param
    result = run_zoo("export", str(runs[run]), *flags, "--output", str(folder))
    assert result.exit_code == 0, result.stderr
    return folder


@pytest.fixture
def images(isolated: Path) -> list[str]:
    """PNG and JPEG pictures larger and smaller than the training size (32)."""
    sizes = {"circle.png": (90, 130), "square.jpg": (20, 28), "triangle.png": (45, 60)}
    for index, (name, size) in enumerate(sizes.items()):
        Image.fromarray(shape_image(name.split(".")[0], size, seed=index)).save(isolated / name)
    return [str(isolated / name) for name in sizes]


@pytest.fixture
def without_zoo(tmp_path: Path) -> dict[str, str]:
    """The environment of a Python process in which zoo, TensorFlow and Keras are missing."""
    lines = "".join(f'sys.modules["{name}"] = None\n' for name in HIDDEN)
    write(tmp_path / "hide" / "sitecustomize.py", f"import sys\n\n{lines}")
    return {"PYTHONPATH": str(tmp_path / "hide")}


def classify(export: Path, images: list[str], env: dict[str, str]) -> list[list[str]]:
    result = run_process([sys.executable, str(EXAMPLE), str(export), *images], env=env)
    assert result.exit_code == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines()]


def test_the_example_answers_as_zoo_predict_without_zoo_or_tensorflow(
    zoo_cli, export, images, without_zoo
):
    shipped = classify(export, images, without_zoo)

    predicted = zoo_cli("predict", str(export), *images, "--json").json()["predictions"]
    assert [path for path, _, _ in shipped] == images
    for (_, name, probability), expected in zip(shipped, predicted, strict=True):
        assert name == expected["class"]
        assert float(probability) == pytest.approx(expected["probability"], abs=1e-4)


@pytest.mark.parametrize("name", HIDDEN)
def test_zoo_tensorflow_and_keras_cannot_be_imported_where_the_example_runs(name, without_zoo):
    result = run_process([sys.executable, "-c", f"import {name}"], env=without_zoo)

    assert result.exit_code == 1 and "ModuleNotFoundError" in result.stderr


def test_the_example_imports_only_numpy_pillow_and_the_runtimes():
    tree = ast.parse(EXAMPLE.read_text(encoding="utf-8"))
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }

    assert imported - set(sys.stdlib_module_names) == {
        "numpy",
        "PIL",
        "onnxruntime",
        "ai_edge_litert",
    }


@pytest.mark.parametrize(("height", "width", "size"), [(90, 130, 32), (20, 28, 32), (7, 300, 16)])
def test_the_examples_resize_gives_tf_image_resizes_pixels(height, width, size):
    import tensorflow as tf

    spec = importlib.util.spec_from_file_location("classify", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)

    expected = tf.image.resize(image, (size, size)).numpy()
    np.testing.assert_array_equal(example.resize(image, size), expected)


#: Every ``$ zoo ...`` command in the page's code blocks, as argument lists.
COMMANDS = [
    shlex.split(line.removeprefix("$ "))[1:]
    for block in re.findall(r"^```console\n(.*?)^```", PAGE, re.MULTILINE | re.DOTALL)
    for line in block.splitlines()
    if line.startswith("$ zoo ")
]


def test_the_page_shows_export_and_predict_commands():
    assert {command[0] for command in COMMANDS} == {"export", "predict"}


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_each_command_on_the_page_is_one_zoo_accepts(zoo_cli, capsys, command):
    from zoo.cli import build_parser

    build_parser().parse_args(command)  # exits 2, naming what is wrong, if it is not
    with pytest.raises(SystemExit) as exited:
        zoo_cli(command[0], "--help")
    assert exited.value.code == 0
    usage = capsys.readouterr().out
    for flag in (word for word in command if word.startswith("--")):
        assert re.search(rf"{flag}\b", usage), f"zoo {command[0]} --help has no {flag}"


def test_the_page_installs_what_the_example_says_it_needs():
    docstring = ast.get_docstring(ast.parse(EXAMPLE.read_text(encoding="utf-8"))) or ""
    installs = [line.split("#")[0].strip() for line in docstring.splitlines() if "pip " in line]

    assert installs == [
        "pip install onnxruntime pillow numpy",
        "pip install ai-edge-litert pillow numpy",
    ]
    assert all(install in PAGE for install in installs)
    assert "examples/deploy/classify.py" in PAGE
