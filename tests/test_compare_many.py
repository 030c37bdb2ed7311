"""``zoo compare`` of many runs, as a user runs it: a new process on run directories
written before, ranked in one table, on a held-out folder, refusing damaged files.

Two tiny runs are trained for the module (one epoch on 24-pixel colour images); the
others are written by hand as ``zoo run`` writes them (see ``test_compare.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import colour_folder, run_zoo
from test_compare import fake_run, rows

CLASSES = {"blue": 16, "red": 16}
TINY = ["--epochs", "1", "--image-size", "24", "--batch-size", "8"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two runs on the same colour folder with other learning rates, and a held-out
    folder of new images of the same classes."""
    root = tmp_path_factory.mktemp("compare-many")
    data = colour_folder(root / "colours", CLASSES)
    runs = {}
    for rate in ("0.01", "0.0001"):
        out = root / f"lr{rate}"
        args = ["image_folder", "small_cnn", "gap_softmax", *TINY, "--learning-rate", rate]
        result = run_zoo(
            "run", *args, "--set", f"dataset.path={data}", "--output", str(out), cwd=root
        )
        assert result.exit_code == 0, result.stderr
        (runs[rate],) = out.iterdir()
    held_out = colour_folder(root / "held_out", {"blue": 5, "red": 5}, seed=1)
    return {**runs, "held_out": held_out}


def copied(trained: dict[str, Path], isolated: Path) -> list[Path]:
    return [shutil.copytree(trained[r], isolated / f"lr{r}") for r in ("0.01", "0.0001")]


def test_runs_are_ranked_on_a_held_out_folder(trained, isolated: Path):
    runs = copied(trained, isolated)
    shutil.rmtree(runs[1] / "model.keras", ignore_errors=True)
    (runs[1] / "model.keras").unlink(missing_ok=True)
    failed = fake_run(isolated, "failed", [0.5], status="failed", test={})

    result = run_zoo("compare", *map(str, [*runs, failed]), "--on", str(trained["held_out"]))
    data = run_zoo(
        "compare", *map(str, [*runs, failed]), "--on", str(trained["held_out"]), "--json",
        "--figure", "again.png",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert "3 runs, ranked by accuracy on " in result.stdout
    assert "held-out" in result.stdout and "images" in result.stdout
    found = data.json()
    assert found["sort"]["key"] == "held-out" and found["on"] == str(trained["held_out"])
    first, *others = found["runs"]
    assert first["path"] == str(runs[0]) and first["rank"] == 1
    assert first["held_out"]["examples"] == 10 and 0 <= first["held_out"]["accuracy"] <= 1
    assert Path(first["held_out"]["figure"]).parent == runs[0]
    assert [run["held_out"] for run in others] == [None, None]  # no model: ranked last
    assert "saved no model" in data.stderr


def test_a_damaged_model_is_named_with_its_run(trained, isolated: Path):
    runs = copied(trained, isolated)
    model = runs[1] / "model.keras"
    model.write_bytes(model.read_bytes()[:100])

    result = run_zoo("compare", *map(str, runs), "--on", str(trained["held_out"]))

    message = " ".join(result.stderr.split())
    assert result.exit_code == 2, result.stderr
    assert f"run lr=0.0001 ({runs[1]}) cannot be ranked on" in message
    assert "Traceback" not in message
    assert not (isolated / "comparison.png").exists()


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("config.json", "config.json is not valid JSON"),
        ("metrics.json", "metrics.json is not valid JSON"),
    ],
)
def test_a_truncated_record_is_a_clear_error(trained, isolated: Path, name: str, says: str):
    runs = copied(trained, isolated)
    damaged = runs[0] / name
    damaged.write_text(damaged.read_text()[:40])

    result = run_zoo("compare", *map(str, runs))

    message = " ".join(result.stderr.split())
    assert result.exit_code == 2, result.stderr
    assert f"the run directory {runs[0]} is damaged: {damaged} {says.split(' ', 1)[1]}" in message
    assert f"or leave {runs[0]} out of the comparison" in message
    assert "Traceback" not in message


def test_a_held_out_folder_must_be_a_folder_of_the_runs_classes(trained, isolated: Path):
    runs = copied(trained, isolated)
    colour_folder(isolated / "other", {"green": 2, "red": 2})

    missing = run_zoo("compare", *map(str, runs), "--on", "nowhere")
    other = run_zoo("compare", *map(str, runs), "--on", "other")

    assert missing.exit_code == 2 and "nowhere is not a folder" in missing.stderr
    assert other.exit_code == 2 and "cannot be ranked on other" in other.stderr
    assert "'green'" in other.stderr and "Traceback" not in other.stderr


# Many runs, written by hand ---------------------------------------------------------------


def seven_runs(root: Path) -> list[Path]:
    """Seven runs as a first hour leaves them: pretrained or not, fine-tuned or not,
    several learning rates, one failed."""
    frozen = {"weights": "shapes4", "trainable": False}
    tuning = {"fine_tune_epochs": 2, "fine_tune_layers": "conv2", "fine_tune_lr": 1e-5}
    runs = [
        fake_run(root, "scratch", [0.55, 0.6, 0.62], backbone="shapes_cnn",
                 params={"weights": "none", "trainable": True}),
        fake_run(root, "frozen", [0.8, 0.9, 0.93], backbone="shapes_cnn", params=frozen),
        fake_run(root, "tuned", [0.8, 0.9, 0.93, 0.95, 0.97], backbone="shapes_cnn",
                 params=frozen, settings={"epochs": 3, **tuning},
                 fine_tune_layers=["conv2", "conv3"],
                 fine_tune_parameters={"trainable": 9410, "total": 28705}),
        fake_run(root, "mobile", [0.7, 0.85, 0.88], backbone="mobilenet_v2",
                 params={"weights": "imagenet"}),
        fake_run(root, "mobile_fast", [0.7, 0.86, 0.9], backbone="mobilenet_v2",
                 params={"weights": "imagenet"}, settings={"learning_rate": 0.01}),
        fake_run(root, "nan", [0.5, 0.52], settings={"learning_rate": 0.1}, status="failed",
                 error="RunFailed: NaN loss", test={}),
        fake_run(root, "augmented", [0.6, 0.75, 0.8], settings={"augment": True}),
    ]  # fmt: skip
    tuned = json.loads((runs[2] / "metrics.json").read_text())
    for row in tuned["history"]:
        row["stage"] = "head" if row["epoch"] <= 3 else "fine_tune"
    (runs[2] / "metrics.json").write_text(json.dumps(tuned))
    return runs


def test_seven_runs_are_one_table_ranked_with_short_honest_labels(isolated: Path):
    runs = seven_runs(isolated)

    shown = run_zoo("compare", *map(str, runs), cwd=isolated)
    data = run_zoo("compare", *map(str, runs), "--json", "--figure", "b.png", cwd=isolated)

    assert shown.exit_code == 0, shown.stderr
    assert [line.strip() for line in shown.stdout.splitlines() if " runs, " in line] == [
        "7 runs, ranked by best validation accuracy (best first)"
    ]
    found = data.json()["runs"]
    assert [Path(run["path"]).name for run in found] == [
        "tuned", "frozen", "mobile_fast", "mobile", "augmented", "scratch", "nan",
    ]  # fmt: skip
    assert [row[0] for row in rows(shown.stdout)] == [str(i) for i in range(1, 8)]
    labels = {Path(run["path"]).name: run["label"] for run in found}
    assert labels["tuned"] == "shapes_cnn fine-tuned from conv2"
    assert all(len(label) <= 32 for label in labels.values())
    tuned, frozen = found[0], found[1]
    assert tuned["differs"]["fine_tuned"] == "from conv2"
    assert "backbone.trainable" not in tuned["differs"]  # not trainable=False
    assert frozen["differs"]["backbone.trainable"] is False
    for run in found[1:]:  # no fine-tuning setting on runs that never fine-tuned
        assert not any(key.startswith("fine_tun") for key in run["differs"])
    assert not any(key.startswith("augment_") for run in found for key in run["differs"])
    assert "trainable=False" not in rows(shown.stdout)[0][2]


@pytest.mark.parametrize(
    ("sort", "first", "last"),
    [
        ("test", "tuned", "nan"),
        ("given", "scratch", "augmented"),
        ("target", "frozen", "nan"),
    ],
)
def test_sort_chooses_the_ranking(isolated: Path, sort: str, first: str, last: str):
    runs = seven_runs(isolated)

    result = run_zoo("compare", *map(str, runs), "--sort", sort, "--json", cwd=isolated)

    assert result.exit_code == 0, result.stderr
    names = [Path(run["path"]).name for run in result.json()["runs"]]
    assert (names[0], names[-1]) == (first, last)


def test_sort_by_label_is_alphabetical(isolated: Path):
    runs = seven_runs(isolated)

    result = run_zoo("compare", *map(str, runs), "--sort", "label", "--json", cwd=isolated)

    labels = [run["label"] for run in result.json()["runs"]]
    assert labels == sorted(labels) and len(set(labels)) == 7


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--sort", "tset"], "unknown --sort key 'tset' (did you mean 'target', 'test' or"),
        (["--sort", "held-out"], "no folder was given"),
    ],
)
def test_a_bad_sort_key_lists_the_valid_ones(isolated: Path, args, complaint):
    run = fake_run(isolated, "a", [0.5])

    result = run_zoo("compare", str(run), *args, cwd=isolated)

    message = " ".join(result.stderr.split())
    assert result.exit_code == 2 and complaint in message
    assert "best (best validation accuracy)" in message or "--on FOLDER" in message
    assert "Traceback" not in message


def test_an_existing_figure_is_kept_unless_overwrite(isolated: Path):
    run = fake_run(isolated, "a", [0.5, 0.7])
    (isolated / "comparison.png").write_bytes(b"mine")

    refused = run_zoo("compare", str(run), cwd=isolated)
    kept = (isolated / "comparison.png").read_bytes()
    replaced = run_zoo("compare", str(run), "--overwrite", cwd=isolated)

    message = " ".join(refused.stderr.split())
    assert refused.exit_code == 2
    assert "comparison.png already exists; zoo compare does not overwrite it unless told" in message
    assert "pass --overwrite to replace it, or another --figure PATH" in message
    assert kept == b"mine"
    assert replaced.exit_code == 0, replaced.stderr
    assert (isolated / "comparison.png").read_bytes()[:4] == b"\x89PNG"
