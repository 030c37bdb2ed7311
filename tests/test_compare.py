"""``zoo compare``: the table's data, the figure, and runs that differ, failed or resumed.

The run directories here are written by hand, as ``zoo run`` writes them: comparing
reads ``config.json`` and ``metrics.json`` only, so no training is needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image


def fake_run(
    root: Path,
    name: str,
    val_accuracy: list[float],
    *,
    backbone: str = "small_cnn",
    params: dict[str, Any] | None = None,
    recipe: str | None = None,
    classes: str = "circle,square",
    settings: dict[str, Any] | None = None,
    **metrics: Any,
) -> Path:
    """A run directory whose history has the given validation accuracies; ``settings``
    change its config.json."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = {
        "dataset": {"kind": "dataset", "name": "shapes", "plugin": "shapes",
                    "params": {"classes": classes}},
        "backbone": {"kind": "backbone", "name": backbone, "plugin": backbone,
                     "params": params or {}},
        "head": {"kind": "head", "name": "gap_sigmoid", "plugin": "heads", "params": {}},
        "epochs": len(val_accuracy), "batch_size": 32, "image_size": 64,
        "learning_rate": 0.001, "optimizer": "adam", "seed": 0, "recipe": recipe,
        "command": ["zoo", "run"], **(settings or {}),
    }  # fmt: skip
    history = [
        {"epoch": i, "loss": 1 - v, "accuracy": v, "val_loss": 1.1 - v, "val_accuracy": v}
        for i, v in enumerate(val_accuracy, 1)
    ]
    record = {
        "status": "completed",
        "error": None,
        "history": history,
        "test": {"loss": 0.3, "accuracy": val_accuracy[-1] if val_accuracy else 0.5},
        "parameters": {"total": 28705, "trainable": 65, "non_trainable": 28640},
        "timings": {"data": 0.5, "build": 0.1, "train": 3.0},
        "seed": 0,
        "dataset": {"class_names": classes.split(",")},
        **metrics,
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "metrics.json").write_text(json.dumps(record))
    return run_dir


def rows(stdout: str) -> list[list[str]]:
    """The first line of each run's row of ``zoo compare``'s table, split into cells."""
    lines = [line.strip() for line in stdout.splitlines()]
    return [re.split(r"\s{2,}", line) for line in lines if re.match(r"\d+ {2,}\S", line)]


def assert_png(path: Path) -> None:
    """A readable PNG of a real figure's size, not an empty canvas."""
    assert path.stat().st_size > 20_000
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] >= 800 and image.size[1] >= 300
        image.verify()


def test_compare_reports_each_run_and_draws_the_figure(zoo_cli, isolated: Path):
    transfer = fake_run(isolated, "transfer", [0.90, 0.95, 0.96], backbone="resnet50")
    scratch = fake_run(isolated, "scratch", [0.50, 0.60, 0.70, 0.72, 0.71])

    result = zoo_cli("compare", str(transfer), str(scratch), "--json")

    assert result.exit_code == 0, result.stderr
    data = result.json()
    # The default target is the lower of the runs' best validation accuracies.
    assert data["target"] == 0.72
    first, second = data["runs"]
    assert (first["label"], second["label"]) == ("resnet50", "small_cnn")
    assert first["epochs"] == 3 and second["epochs"] == 5
    assert first["final_val_accuracy"] == 0.96 and first["best_epoch"] == 3
    assert second["best_val_accuracy"] == 0.72 and second["best_epoch"] == 4
    assert first["epochs_to_target"] == 1 and second["epochs_to_target"] == 4
    assert first["test_accuracy"] == 0.96
    assert first["parameters"]["trainable"] == 65
    assert first["timings"]["train"] == 3.0 and first["total_seconds"] == 3.6
    assert first["differs"] == {"backbone": "resnet50", "epochs": 3}
    assert data["warnings"] == []
    assert Path(data["figure"]) == Path("comparison.png")
    assert_png(isolated / "comparison.png")


def test_an_explicit_target_some_runs_never_reach(zoo_cli, isolated: Path):
    runs = [fake_run(isolated, n, v) for n, v in (("a", [0.6, 0.9]), ("b", [0.55, 0.7]))]

    result = zoo_cli("compare", *map(str, runs), "--target", "0.8", "--figure", "out/c.png")

    assert result.exit_code == 0, result.stderr
    assert "epochs to 0.8000" in " ".join(result.stdout.split())
    first, second = rows(result.stdout)
    assert first[:2] == ["1", "small_cnn #1"] and "2" in first
    assert "never" in second
    assert "figure: out/c.png" in result.stdout
    assert_png(isolated / "out" / "c.png")


def test_the_figure_is_written_whole_at_the_path_given(zoo_cli, isolated: Path):
    """A --figure without a suffix is a PNG at that very path (matplotlib alone would
    add .png to it), and nothing else is left beside it."""
    run = fake_run(isolated, "a", [0.6, 0.9])
    (isolated / "out").mkdir()

    result = zoo_cli("compare", str(run), "--figure", "out/curves", "--json")

    assert result.exit_code == 0, result.stderr
    assert result.json()["figure"] == str(Path("out/curves"))
    assert_png(isolated / "out" / "curves")
    assert [p.name for p in (isolated / "out").iterdir()] == ["curves"]


def test_a_figure_zoo_cannot_write_exits_2_saying_why(zoo_cli, isolated: Path):
    run = fake_run(isolated, "a", [0.6, 0.9])
    (isolated / "taken").write_text("a file, not a folder")

    result = zoo_cli("compare", str(run), "--figure", "taken/c.png")

    assert result.exit_code == 2
    assert "cannot write the figure taken/c.png: " in result.stderr
    assert "pass another --figure PATH" in result.stderr
    assert "Traceback" not in result.stderr


def test_failed_resumed_and_unfinished_runs_are_shown_as_recorded(zoo_cli, isolated: Path):
    failed = fake_run(
        isolated, "nan_run", [0.5, 0.55], status="failed", error="RunFailed: NaN loss", test={}
    )
    resumed = fake_run(isolated, "resumed", [0.6, 0.7, 0.8, 0.9], resumed=[{"epoch": 2}])
    metrics = json.loads((resumed / "metrics.json").read_text())
    for row in metrics["history"]:
        row["stage"] = "head" if row["epoch"] <= 2 else "fine_tune"
    # Epoch 2 recorded twice (it was repeated after the resume): the last one counts.
    metrics["history"].insert(2, {**metrics["history"][1], "val_accuracy": 0.65})
    (resumed / "metrics.json").write_text(json.dumps(metrics))
    unfinished = fake_run(isolated, "unfinished", [0.5])
    (unfinished / "metrics.json").unlink()

    labels = ["--label", "nan_run", "--label", "resumed", "--label", "unfinished"]
    result = zoo_cli("compare", str(failed), str(resumed), str(unfinished), *labels, "--json")

    assert result.exit_code == 0, result.stderr
    runs = {Path(r["path"]).name: r for r in result.json()["runs"]}
    assert runs["nan_run"]["status"] == "failed" and runs["nan_run"]["error"].endswith("NaN loss")
    assert runs["nan_run"]["test_accuracy"] is None
    assert runs["resumed"]["epochs"] == 4 and runs["resumed"]["resumed"] == 1
    assert runs["resumed"]["stage_starts"] == {"head": 1, "fine_tune": 3}
    assert runs["resumed"]["best_val_accuracy"] == 0.9
    assert runs["unfinished"]["status"] == "unknown" and runs["unfinished"]["epochs"] == 0
    assert "run nan_run failed: RunFailed: NaN loss; its curves end at epoch 2" in result.stderr
    assert "run unfinished has no metrics.json" in result.stderr
    assert_png(isolated / "comparison.png")


def test_the_table_marks_resumes_and_failures(zoo_cli, isolated: Path):
    failed = fake_run(isolated, "failed", [], status="failed", error="boom")
    tuned = fake_run(isolated, "tuned", [0.6, 0.8], backbone="resnet50", resumed=[{}, {}])

    result = zoo_cli("compare", str(failed), str(tuned))

    assert result.exit_code == 0, result.stderr
    resumed, failed_row = rows(result.stdout)  # best first; a run without epochs last
    assert resumed[:2] == ["1", "resnet50"] and resumed[2].startswith("completed, resumed")
    assert "0.8000 (2)" in resumed
    assert failed_row[:3] == ["2", "small_cnn", "failed"]
    assert "warning: run small_cnn failed: boom; it recorded no epochs" in result.stderr


def test_runs_on_different_data_are_compared_with_a_warning(zoo_cli, isolated: Path):
    a = fake_run(isolated, "a", [0.7], recipe="first")
    b = fake_run(isolated, "b", [0.8], recipe="second", classes="ring,diamond")

    result = zoo_cli("compare", str(a), str(b), "--json")

    data = result.json()
    assert [r["label"] for r in data["runs"]] == ["second", "first"]  # best first
    assert data["runs"][0]["differs"] == {"dataset.classes": "ring,diamond"}
    assert any("different data" in w for w in data["warnings"])


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["nowhere"], "is not a directory"),
        (["empty"], "empty holds no run"),
        (["ok", "--target", "1.5"], "between 0 and 1"),
    ],
)
def test_bad_arguments_exit_2(zoo_cli, isolated: Path, args, complaint):
    (isolated / "empty").mkdir()
    fake_run(isolated, "ok", [0.5])

    result = zoo_cli("compare", *args)

    assert result.exit_code == 2
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr


# Many runs -------------------------------------------------------------------------------


def test_default_labels_are_the_fewest_settings_that_tell_the_runs_apart(zoo_cli, isolated):
    runs = [
        fake_run(isolated, "a", [0.7], settings={"learning_rate": 0.001}),
        fake_run(isolated, "b", [0.8], settings={"learning_rate": 0.01}),
        fake_run(isolated, "c", [0.9], backbone="resnet50", params={"weights": "none"}),
        fake_run(isolated, "d", [0.9], settings={"learning_rate": 0.01}),
    ]

    result = zoo_cli("compare", *map(str, runs), "--label", "first", "--json")

    assert result.exit_code == 0, result.stderr
    labels = [run["label"] for run in result.json()["runs"]]
    # Given, then the backbone, and the learning rate only where the backbone is the
    # same; "b" and "d" differ in nothing: numbered.
    assert labels == [
        "resnet50",
        "small_cnn lr=0.01 #4",
        "small_cnn lr=0.01 #2",
        "first",
    ]  # best first: c and d reached 0.9


def test_differs_leaves_out_what_a_run_does_not_set(zoo_cli, isolated: Path):
    transfer = fake_run(
        isolated,
        "t",
        [0.9],
        backbone="resnet50",
        params={"weights": "none"},
        settings={"fine_tune_epochs": 2, "fine_tune_layers": "conv5"},
    )
    scratch = fake_run(isolated, "s", [0.8], settings={"fine_tune_epochs": 0})

    result = zoo_cli("compare", str(transfer), str(scratch), "--json")

    first, second = result.json()["runs"]
    # Fine-tuning settings apply to the fine-tuned run only: none is a difference of
    # the other, and the layer reads as what it was.
    assert first["differs"] == {
        "backbone": "resnet50", "backbone.weights": "none", "fine_tuned": "from conv5"
    }  # fmt: skip
    assert second["differs"] == {"backbone": "small_cnn"}


def test_the_default_target_ignores_runs_at_chance(zoo_cli, isolated: Path):
    stuck = fake_run(isolated, "stuck", [0.5, 0.52, 0.51])
    learned = fake_run(isolated, "learned", [0.7, 0.9, 0.93], backbone="resnet50")

    result = zoo_cli("compare", str(stuck), str(learned), "--json")

    data = result.json()
    assert data["target"] == 0.93
    assert [run["at_chance"] for run in data["runs"]] == [False, True]  # best first
    assert data["runs"][0]["epochs_to_target"] == 3
    assert any("small_cnn stayed at chance" in w for w in data["warnings"])


def test_chance_is_the_most_common_validation_class_when_recorded(zoo_cli, isolated: Path):
    # 80% of the validation examples are circles: 0.82 is chance, not learning.
    counts = {"class_counts": {"validation": {"circle": 80, "square": 20}}}
    skewed = fake_run(
        isolated, "skewed", [0.8, 0.82], dataset={"class_names": ["circle", "square"], **counts}
    )
    other = fake_run(isolated, "other", [0.9, 0.95], backbone="resnet50")

    data = zoo_cli("compare", str(skewed), str(other), "--json", "--sort", "given").json()

    assert data["runs"][0]["chance"] == 0.8 and data["runs"][0]["at_chance"]
    assert data["target"] == 0.95


def test_epochs_are_counted_per_stage(zoo_cli, isolated: Path):
    tuned = fake_run(
        isolated, "tuned", [0.6, 0.7, 0.8, 0.85, 0.9], settings={"epochs": 3, "fine_tune_epochs": 2}
    )
    stopped = fake_run(
        isolated,
        "stopped",
        [0.6, 0.65, 0.8, 0.85, 0.9],
        settings={"epochs": 5, "fine_tune_epochs": 3},
    )
    for run_dir, head in ((tuned, 3), (stopped, 3)):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        for row in metrics["history"]:
            row["stage"] = "head" if row["epoch"] <= head else "fine_tune"
        (run_dir / "metrics.json").write_text(json.dumps(metrics))

    labels = ["--label", "tuned", "--label", "stopped", "--sort", "given"]
    result = zoo_cli("compare", str(tuned), str(stopped), *labels)

    assert result.exit_code == 0, result.stderr
    tuned_row, stopped_row = rows(result.stdout)
    assert "3 + 2 fine-tune" in tuned_row
    assert "3 of 5 + 2 of 3 fine-tune" in stopped_row


def test_many_runs_are_rows_of_one_table_best_first(zoo_cli, isolated: Path):
    rates = [0.1, 0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001, 3e-05, 1e-05]
    runs = [
        fake_run(isolated, f"run{i}", [0.6, 0.7 + i / 100], settings={"learning_rate": rate})
        for i, rate in enumerate(rates)
    ]

    result = zoo_cli("compare", *map(str, runs))

    assert result.exit_code == 0, result.stderr
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert [line for line in lines if " runs, " in line] == [
        "9 runs, ranked by best validation accuracy (best first)"
    ]
    assert max(map(len, lines)) <= 120  # stdout is not a terminal: 120 columns
    found = rows(result.stdout)
    assert [row[0] for row in found] == [str(i) for i in range(1, 10)]
    # The last run learned most; each label is its learning rate, once in its row and
    # once beside its directory.
    assert [row[1] for row in found] == [f"lr={rate}" for rate in reversed(rates)]
    for rate in rates:
        label = re.compile(rf"lr={re.escape(str(rate))}(\s|:|$)")
        assert sum(bool(label.search(line)) for line in lines) == 2


def test_the_legend_is_outside_the_plots(isolated: Path):
    from zoo.results.compare import compare
    from zoo.results.curves import figure
    from zoo.storage.runs import read_run

    records = [read_run(fake_run(isolated, f"r{i}", [0.5, 0.6 + i / 20])) for i in range(8)]

    drawn = figure(records, compare(records))

    drawn.draw_without_rendering()  # lays the figure out, as saving it does
    (legend,) = drawn.legends
    assert all(ax.get_legend() is None for ax in drawn.axes)
    box = legend.get_window_extent()
    assert all(box.x0 >= ax.get_window_extent().x1 for ax in drawn.axes)
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == [f"small_cnn #{i}" for i in range(1, 9)] + ["validation", "training"] + [
        f"target {compare(records)['target']:.4f}"
    ]


@pytest.mark.parametrize(
    ("labels", "complaint"),
    [(["a", "b", "c"], "3 --label names for 2 runs"), (["a", "a"], "labels must be distinct")],
)
def test_bad_labels_exit_2(zoo_cli, isolated: Path, labels, complaint):
    runs = [fake_run(isolated, n, [0.5]) for n in ("x", "y")]

    result = zoo_cli("compare", *map(str, runs), *(f"--label={label}" for label in labels))

    assert result.exit_code == 2 and complaint in result.stderr
