"""Quantized exports of a model whose classes are learned, checked by their runtime.

The demo's pretrained run (``shapes_cnn`` frozen, ring vs diamond) has outputs far from
0.5, so an int8 file that rounds its activations badly would lose accuracy visibly: the
issue's bar is at most 2 points for int8 LiteRT. ``zoo export`` runs in this process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from test_export_every_kind import exported

import zoo


@pytest.fixture(scope="module")
def learned(tmp_path_factory) -> Path:
    """The demo's pretrained run: shapes_cnn, frozen, learned ring vs diamond."""
    registry = zoo.load_registry(zoo.LoadOptions(builtins_only=True))
    resolved = zoo.resolve_run(registry, recipe="demo_pretrained", settings={"epochs": 4})
    run_dir = zoo.run(resolved, output=tmp_path_factory.mktemp("runs")).run_dir
    assert run_dir is not None
    return run_dir


@pytest.mark.parametrize(
    ("fmt", "io"),
    [("litert", "float32"), ("litert", "uint8"), ("openvino", "float32")],
    ids=["litert", "litert-uint8", "openvino"],
)
def test_int8_of_a_learned_model_stays_within_2_points(zoo_cli, learned, fmt, io):
    if fmt == "openvino":
        pytest.importorskip("nncf", reason="pip install 'zoo[openvino-int8]'")
    flags = ["--quantize", "int8", *(["--io", io] if io != "float32" else [])]
    check, output = exported(zoo_cli, learned, fmt, *flags)

    assert check["passed"], check["reason"]
    assert check["accuracy_keras"] > 0.8  # the classes are learned: not a coin toss
    assert 100 * (check["accuracy_keras"] - check["accuracy_export"]) <= 2
    assert check["calibration"].startswith("the run's training split: 200 of")
    signature = json.loads((output / "signature.json").read_text())
    assert signature["input"]["dtype"] == io and signature["quantization"] == "int8"


@pytest.mark.parametrize("accept", [False, True])
def test_an_int8_export_calibrated_on_the_wrong_images_fails_its_check(
    zoo_cli, learned, isolated, accept
):
    """Calibrated on black images, int8 clips every real pixel: the check must say so."""
    black = isolated / "black"
    black.mkdir()
    for index in range(4):
        Image.new("RGB", (64, 64)).save(black / f"{index}.png")
    output = isolated / "clipped"
    args = ["export", str(learned), "--format", "litert", "--quantize", "int8",
            "--calibration", str(black), "--output", str(output)]  # fmt: skip

    result = zoo_cli(*args, *(["--accept"] if accept else []))
    check = json.loads((output / "export.json").read_text())

    assert not check["passed"] and "over --max-drop 2" in check["reason"]
    assert check["calibration"] == f"{black}: 4 of 4 images"
    assert (output / "model.tflite").is_file()  # kept, whatever the verdict
    if accept:
        assert result.exit_code == 0 and check["accepted"]
    else:
        assert result.exit_code == 1 and not check["accepted"]
        assert "pass --accept to accept it" in " ".join(result.stderr.split())
