"""Run directories written before zoo's modules moved into packages still work.

Both were written by zoo at commit 6cee0b2, the last one with the flat layout (zoo.layers,
zoo.runs, zoo.train.checkpoints...): a finished run, and a run stopped by Ctrl-C after
its second epoch of four. Tests copy them first: a resume writes into its run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import rewrite_manifest, run_zoo

DATA = Path(__file__).parent / "data"
#: ``zoo run shapes small_cnn gap_sigmoid`` at 32x32 for one epoch, and what it predicted.
FINISHED = DATA / "run-before-packages"
#: The same at four epochs on 400 images, stopped in its third epoch.
STOPPED = DATA / "run-stopped-before-packages"


@pytest.fixture
def finished(isolated: Path) -> Path:
    return Path(shutil.copytree(FINISHED, isolated / "finished"))


@pytest.fixture
def stopped(isolated: Path) -> Path:
    return Path(shutil.copytree(STOPPED, isolated / "stopped"))


def test_a_finished_run_predicts_what_it_predicted_then(finished: Path):
    then = json.loads((finished / "predicted.json").read_text())

    predicted = run_zoo("predict", str(finished), str(finished / then["file"]), "--json")

    assert predicted.exit_code == 0, predicted.stderr
    [prediction] = predicted.json()["predictions"]
    now = {t["class"]: t["probability"] for t in prediction["top_k"]}
    assert now == pytest.approx(then["probabilities"], abs=1e-6)


def test_a_finished_run_evaluates_on_its_test_split_again(finished: Path, isolated: Path):
    evaluated = run_zoo("evaluate", str(finished), "--json", "--output", str(isolated / "eval"))

    assert evaluated.exit_code == 0, evaluated.stderr
    recorded = json.loads((finished / "metrics.json").read_text())
    accuracy = evaluated.json()["evaluation"]["accuracy"]
    assert accuracy == pytest.approx(recorded["test"]["accuracy"], abs=1e-6)


def test_a_stopped_run_resumes_from_its_checkpoint_and_finishes(stopped: Path):
    before = json.loads((stopped / "metrics.json").read_text())

    resumed = run_zoo("run", "--resume", str(stopped), "--json")

    assert resumed.exit_code == 0, resumed.stderr
    after = json.loads((stopped / "metrics.json").read_text())
    assert before["status"] == "interrupted" and after["status"] == "completed"
    assert [row["epoch"] for row in after["history"]] == [1, 2, 3, 4]
    assert after["history"][:2] == before["history"]  # the saved epochs are kept, not redone
    assert (stopped / "model.keras").is_file()


def test_a_manifest_naming_zoos_old_layers_module_loads(finished: Path):
    """An older zoo listed its own Preprocess layer under ``zoo.layers``: today's name for
    that module is ``zoo.model.layers``, and the recorded name is read as it."""
    model = finished / "model.keras"
    preprocess = {"name": "zoo>Preprocess", "module": "zoo.layers", "qualname": "Preprocess"}
    rewrite_manifest(
        model, lambda m: m["keras_objects"].append({**preprocess, "component": "backbone"})
    )
    then = json.loads((finished / "predicted.json").read_text())

    predicted = run_zoo("predict", str(finished), str(finished / then["file"]), "--json")

    assert predicted.exit_code == 0, predicted.stderr


def test_a_manifest_naming_a_module_beside_the_old_one_is_still_refused(finished: Path):
    model = finished / "model.keras"
    planted = {"name": "zoo>Planted", "module": "zoo.layers_", "qualname": "Planted"}
    rewrite_manifest(
        model, lambda m: m["keras_objects"].append({**planted, "component": "backbone"})
    )

    predicted = run_zoo("predict", str(finished), str(finished / "square.png"))

    assert predicted.exit_code == 2
    assert "zoo.layers_" in predicted.stderr and "Traceback" not in predicted.stderr


def test_a_stopped_run_whose_last_checkpoint_is_damaged_resumes_from_the_one_before(
    stopped: Path,
):
    weights = stopped / "checkpoints" / "epoch-0002" / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:100])  # cut short, as a full disk leaves it

    resumed = run_zoo("run", "--resume", str(stopped), "--json")

    assert resumed.exit_code == 0, resumed.stderr
    assert "epoch-0002" in resumed.stderr and "Traceback" not in resumed.stderr
    after = json.loads((stopped / "metrics.json").read_text())
    assert after["status"] == "completed"
    assert [row["epoch"] for row in after["history"]] == [1, 2, 3, 4]
