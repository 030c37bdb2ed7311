"""Evaluation you can act on: the report at the end of ``zoo run``, and ``zoo evaluate``.

One run is trained for the module, on a generated folder of four colour classes, two
of which ("green" and "lime") look alike, so the model always makes mistakes to
report. ``zoo evaluate`` then runs on that run in new processes and in this one.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import colour_folder, run_zoo
from PIL import Image

import zoo

COUNTS = {"blue": 24, "green": 24, "lime": 24, "red": 24}
SETTINGS = {"epochs": 2, "image_size": 24, "batch_size": 8}


@dataclass(frozen=True)
class Trained:
    """The module's run: its directory, its data, and what it printed."""

    run_dir: Path
    data: Path
    stdout: str
    stderr: str

    @property
    def metrics(self) -> dict:
        return json.loads((self.run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    root = tmp_path_factory.mktemp("evaluate")
    data = colour_folder(root / "colours", COUNTS)
    (data / "red" / "notes.txt").write_text("not an image\n")
    (data / "green" / "empty.jpg").write_bytes(b"")
    out, err = io.StringIO(), io.StringIO()
    with (
        pytest.MonkeyPatch.context() as env,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        env.setenv("ZOO_CACHE_DIR", str(root / "cache"))
        env.chdir(root)  # the report shows files relative to the working directory
        registry = zoo.load_registry(zoo.LoadOptions(builtins_only=True))
        names = ["image_folder", "small_cnn", "gap_softmax"]
        resolved = zoo.resolve_run(
            registry, names, settings=SETTINGS, sets=[f"dataset.path={data}"]
        )
        run_dir = zoo.run(resolved, output=root / "runs").run_dir
    assert run_dir is not None
    return Trained(run_dir, data, out.getvalue(), err.getvalue())


def one_line(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines


# The data summary before training --------------------------------------------------------


def test_the_run_shows_classes_and_counts_and_names_unreadable_files(trained: Trained):
    dataset = trained.metrics["dataset"]

    assert "data: image_folder, 4 classes" in trained.stdout
    assert dataset["class_counts"]["test"] == {"blue": 2, "green": 2, "lime": 2, "red": 2}
    assert sum(dataset["class_counts"]["train"].values()) == dataset["sizes"]["train"]
    # The empty file is named; notes.txt is not an image, so not "unreadable".
    assert dataset["unreadable"] == [
        {"file": str(trained.data / "green" / "empty.jpg"), "reason": "the file is empty (0 bytes)"}
    ]
    assert "skipped 1 unreadable file" in trained.stderr and "empty.jpg" in trained.stderr
    assert "notes.txt" not in trained.stderr
    # 8 test images: each is 12.5 points of accuracy.
    assert "the test split has only 8 examples: each is 12.5 points" in one_line(trained.stderr)
    assert dataset["warnings"] and all(w in one_line(trained.stderr) for w in dataset["warnings"])


# The report at the end of the run --------------------------------------------------------


def test_the_run_records_its_evaluation_and_shows_it(trained: Trained):
    evaluation = trained.metrics["evaluation"]

    assert evaluation["name"] == "test" and evaluation["examples"] == 8
    assert evaluation["class_names"] == ["blue", "green", "lime", "red"]
    assert [sum(row) for row in evaluation["confusion_matrix"]] == [2, 2, 2, 2]
    assert evaluation["accuracy"] == trained.metrics["test"]["accuracy"]
    assert [c["support"] for c in evaluation["classes"]] == [2, 2, 2, 2]
    figure = trained.run_dir / "confusion_matrix.png"
    assert evaluation["figure"] == str(figure)
    with Image.open(figure) as image:
        assert image.format == "PNG" and image.size[0] > 300
    shown = str(figure.relative_to(trained.data.parent))
    for heading in ("confusion matrix", "per class", "mean over classes", shown):
        assert heading in trained.stdout


def test_each_mistake_names_its_file_in_the_folder_of_its_true_class(trained: Trained):
    evaluation = trained.metrics["evaluation"]
    mistakes = evaluation["mistakes"]

    assert mistakes and evaluation["misclassified"] == len(mistakes)
    confusion = evaluation["confusion_matrix"]
    assert len(mistakes) == sum(map(sum, confusion)) - sum(confusion[i][i] for i in range(4))
    for mistake in mistakes:
        assert Path(mistake["file"]).parent.name == mistake["true"] != mistake["predicted"]
        assert mistake["probability"] >= mistake["true_probability"]
    confidence = [m["probability"] for m in mistakes]
    assert confidence == sorted(confidence, reverse=True)
    worst = str(Path(mistakes[0]["file"]).relative_to(trained.data.parent))  # colours/lime/..
    assert "most confidently wrong" in trained.stdout and worst in trained.stdout


def test_a_dataset_without_files_names_mistakes_by_position(zoo_cli):
    result = zoo_cli(
        "run", "shapes", "small_cnn", "gap_softmax", "--epochs", "1", "--image-size", "24",
        "--set", "dataset.classes=circle,square,triangle", "--set", "dataset.num_images=60",
        "--set", "dataset.min_size=16", "--set", "dataset.max_size=24", "--json",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    metrics = result.json()
    assert sum(metrics["dataset"]["class_counts"]["train"].values()) == 48
    mistakes = metrics["evaluation"]["mistakes"]
    assert mistakes and all(m["file"] is None and 0 <= m["index"] < 6 for m in mistakes)
    assert f"#{mistakes[0]['index']}" in result.stderr  # tables go to stderr with --json


# zoo evaluate ----------------------------------------------------------------------------


def test_zoo_evaluate_in_a_new_process_repeats_the_runs_report(trained: Trained, isolated):
    result = run_zoo("evaluate", str(trained.run_dir), "--output", "out", "--json", cwd=isolated)

    assert result.exit_code == 0, result.stderr
    again, recorded = result.json()["evaluation"], trained.metrics["evaluation"]
    assert again["confusion_matrix"] == recorded["confusion_matrix"]
    assert [m["file"] for m in again["mistakes"]] == [m["file"] for m in recorded["mistakes"]]
    for first, second in zip(again["mistakes"], recorded["mistakes"], strict=True):
        assert first["probability"] == pytest.approx(second["probability"], abs=1e-5)
    assert Path(again["figure"]) == Path("out/confusion_matrix-test.png")
    assert (isolated / "out" / "confusion_matrix-test.png").stat().st_size > 5_000


def test_zoo_evaluate_on_a_new_labelled_folder_names_files_and_unreadable_ones(
    trained: Trained, isolated: Path
):
    holdout = colour_folder(isolated / "holdout", {"blue": 3, "lime": 2, "red": 1}, seed=7)
    (holdout / "green").mkdir()  # no green images: an empty folder says so
    (holdout / "red" / "broken.webp").write_bytes(b"RIFF\0\0\0\0WEBP")

    result = run_zoo("evaluate", str(trained.run_dir), str(holdout), cwd=isolated)

    assert result.exit_code == 1, result.stderr  # some files could not be read
    assert "evaluation: " in result.stdout and "(6 examples, accuracy" in result.stdout
    assert f"{holdout / 'red' / 'broken.webp'}: " in result.stderr
    assert (trained.run_dir / "confusion_matrix-holdout.png").is_file()


def test_zoo_evaluate_json_counts_every_readable_file(zoo_cli, trained: Trained, isolated):
    holdout = colour_folder(isolated / "holdout", {"blue": 2, "green": 2, "lime": 2, "red": 2})

    result = zoo_cli("evaluate", str(trained.run_dir), str(holdout), "--json", "--output", "o")

    assert result.exit_code == 0, result.stderr
    evaluation = result.json()["evaluation"]
    assert evaluation["name"] == str(holdout) and evaluation["examples"] == 8
    assert [c["support"] for c in evaluation["classes"]] == [2, 2, 2, 2]
    assert {Path(m["file"]).parent.name for m in evaluation["mistakes"]} <= set(COUNTS)
    assert (isolated / "o" / "confusion_matrix-holdout.png").is_file()


@pytest.mark.parametrize(
    ("folders", "complaint"),
    [
        (
            ["blue", "green", "lime", "red", "Red2"],
            "not classes of the run: 'Red2' (did you mean 'red'?)",
        ),
        (["blue", "green"], "has no folder for the classes lime, red"),
        ([], "has no folder for the classes blue, green, lime, red"),
    ],
)
def test_class_folders_must_be_the_runs_classes(zoo_cli, trained, isolated, folders, complaint):
    for name in folders:
        (isolated / "holdout" / name).mkdir(parents=True)
    (isolated / "holdout").mkdir(exist_ok=True)

    result = zoo_cli("evaluate", str(trained.run_dir), str(isolated / "holdout"))

    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert complaint in one_line(result.stderr)


def test_a_folder_without_images_is_a_clear_error(zoo_cli, trained: Trained, isolated: Path):
    for name in COUNTS:
        (isolated / "holdout" / name).mkdir(parents=True)

    result = zoo_cli("evaluate", str(trained.run_dir), str(isolated / "holdout"))

    assert result.exit_code == 2 and "holds no images in its class folders" in result.stderr


def test_changed_data_is_pointed_out(zoo_cli, trained: Trained, isolated: Path):
    data = isolated / "colours"
    shutil.copytree(trained.data, data)  # keeps modification times: the same fingerprint
    run_dir = isolated / "run"
    shutil.copytree(trained.run_dir, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["dataset"]["params"]["path"] = str(data)
    (run_dir / "config.json").write_text(json.dumps(config))

    unchanged = zoo_cli("evaluate", str(run_dir), "--json")
    colour_folder(data, {"red": 30}, seed=3)  # 6 more red images, and rewritten ones
    changed = zoo_cli("evaluate", str(run_dir), "--json")

    assert unchanged.exit_code == changed.exit_code == 0, changed.stderr
    assert unchanged.json()["warnings"] == []
    assert "the data changed since the run was trained" in changed.json()["warnings"][0]


def test_a_damaged_run_is_a_clear_error(trained: Trained, isolated: Path):
    run_dir = isolated / "damaged"
    shutil.copytree(trained.run_dir, run_dir)
    config = run_dir / "config.json"
    config.write_text(config.read_text()[:100])

    result = run_zoo("evaluate", str(run_dir), cwd=isolated)

    assert result.exit_code == 2, result.stderr
    assert "config.json is not valid JSON" in one_line(result.stderr)
    assert "Traceback" not in result.stderr


def test_a_run_without_its_model_is_a_clear_error(zoo_cli, trained: Trained, isolated: Path):
    run_dir = isolated / "unfinished"
    shutil.copytree(trained.run_dir, run_dir)
    (run_dir / "model.keras").unlink()

    result = zoo_cli("evaluate", str(run_dir))

    assert result.exit_code == 2
    assert "completed, but its model.keras is missing" in one_line(result.stderr)
