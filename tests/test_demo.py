"""``zoo demo``: two runs with the same settings but the backbone's start, and their comparison.

The full demo (7 epochs on 500 images) takes about 20 s and is measured in
docs/demo.md; here it runs shrunk with its own overrides, once for the module. Too
short to show the pretrained backbone ahead: test_pretrained.py checks that claim on
the backbone's features.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from zoo.cli import main

#: The shrunk demo: 2 epochs on 60 images (48 to train, 6 to validate, 6 to test).
SHRUNK = ["--epochs", "2", "--num-images", "60"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """The output folder of one shrunk ``zoo demo --json``, and what it printed."""
    output = tmp_path_factory.mktemp("demo")
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(stdout):
        # As the `isolated` fixture does, for the whole module; and the frozen run
        # caches its features, which stay out of the user's cache.
        patch.chdir(output)
        for name in ("ZOO_REGISTRY", "ZOO_DISABLE_PLUGINS"):
            patch.delenv(name, raising=False)
        patch.setenv("ZOO_CACHE_DIR", str(output / "cache"))
        code = main(["demo", *SHRUNK, "--output", str(output / "out"), "--json"])
    assert code == 0
    return output / "out", json.loads(stdout.getvalue())


def test_demo_trains_pretrained_and_scratch_alike_and_compares_them(demo):
    _, data = demo

    pretrained, scratch = data["runs"]
    assert (pretrained["label"], scratch["label"]) == ("demo_pretrained", "demo_scratch")
    # The two runs differ in the backbone's weights and whether it trains; nothing else.
    assert pretrained["differs"] == {"backbone.weights": "shapes4", "backbone.trainable": False}
    assert scratch["differs"] == {"backbone.weights": "none", "backbone.trainable": True}
    # Two epochs on 48 images learn little: the only warnings may be about chance.
    assert all("stayed at chance" in warning for warning in data["warnings"])
    assert pretrained["epochs"] == scratch["epochs"] == 2
    assert pretrained["parameters"]["trainable"] == 65
    assert scratch["parameters"]["trainable"] == scratch["parameters"]["total"] == 28705
    metrics = json.loads((Path(pretrained["path"]) / "metrics.json").read_text())
    assert metrics["weights_file"]["path"].endswith("shapes_cnn.weights.h5")
    assert metrics["dataset"]["class_names"] == ["ring", "diamond"]
    config = json.loads((Path(scratch["path"]) / "config.json").read_text())
    assert config["dataset"]["params"]["num_images"] == 60
    assert config["seed"] == 0


def test_both_runs_and_the_figure_go_in_one_new_demo_folder(demo):
    output, data = demo

    [demo_dir] = output.iterdir()
    assert demo_dir.name.endswith("-demo")
    assert Path(data["figure"]) == demo_dir / "comparison.png"
    assert {Path(r["path"]).parent for r in data["runs"]} == {demo_dir}
    with Image.open(data["figure"]) as image:
        assert image.format == "PNG" and image.size[0] >= 800
