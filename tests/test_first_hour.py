"""What a new user tripped on in the first hour (issue 29's smaller points), each run
the way the user runs it: the real ``zoo`` command in a subprocess."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
from helpers import TINY_RUN, colour_folder, hide_openvino, offline_env, run_zoo, write


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A completed tiny run, and the environment it was written in."""
    root = tmp_path_factory.mktemp("first-hour")
    env = {"ZOO_CACHE_DIR": str(root / ".zoo-cache"), "ZOO_REGISTRY": None}
    result = run_zoo(
        "run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--json", cwd=root, env=env
    )
    assert result.exit_code == 0, result.stderr
    return root / result.json()["run_dir"], env


def test_resuming_a_completed_run_offers_commands_that_work(finished_run):
    run_dir, env = finished_run

    again = run_zoo("run", "--resume", str(run_dir), env=env)

    message = " ".join(again.stderr.split())
    assert again.exit_code != 0
    assert "already completed" in message and "..." not in message
    assert f"zoo evaluate {run_dir}" in message
    assert f"zoo run shapes small_cnn gap_sigmoid {' '.join(TINY_RUN)} --json" in message
    evaluated = run_zoo("evaluate", str(run_dir), "--json", env=env)
    assert evaluated.exit_code == 0, evaluated.stderr
    offered = shlex.split(message.split("in a new run: ")[1].split(" got:")[0])
    root = run_dir.parent.parent
    retrained = run_zoo(*offered[1:], cwd=root, env=env)
    assert retrained.exit_code == 0, retrained.stderr
    assert (root / retrained.json()["run_dir"]).parent == run_dir.parent
    assert (root / retrained.json()["run_dir"]).name != run_dir.name


def test_predict_on_a_few_images_does_not_mention_a_missing_openvino(finished_run, tmp_path):
    run_dir, env = finished_run
    images = colour_folder(tmp_path / "images", {"red": 4, "blue": 3})
    env = {**env, **hide_openvino(tmp_path / "hide")}

    few = run_zoo("predict", str(run_dir), str(images), env=env)
    asked = run_zoo("predict", str(run_dir), str(images), "--runtime", "openvino", env=env)

    assert few.exit_code == 0, few.stderr
    assert "OpenVINO is not installed" not in few.stderr
    assert "7 images to run" in few.stderr
    assert asked.exit_code == 2 and "not installed" in asked.stderr


LARGE_PLUGIN = """
import zoo

def build(params):
    import tensorflow as tf
    def split(n):
        images = tf.zeros((n, 8, 8, 3), tf.uint8)
        return tf.data.Dataset.from_tensor_slices((images, tf.range(n) % 2))
    return zoo.Splits(
        train=split(4000), validation=split(400), test=split(200), class_names=["a", "b"],
        sizes={"train": 4000, "validation": 400, "test": 200},
    )

@zoo.hookimpl
def register_datasets(register):
    register(zoo.Dataset(name="large", description="4,000 training images", build=build))
"""


def test_the_data_table_says_what_one_of_many_examples_is_worth(tmp_path: Path):
    write(tmp_path / "large.py", LARGE_PLUGIN)
    write(tmp_path / "registry.toml", '[plugins]\nload = ["large.py"]\n')
    env = {"ZOO_CACHE_DIR": str(tmp_path / ".zoo-cache"), "ZOO_REGISTRY": None}

    result = run_zoo(
        "run", "large", "small_cnn", "gap_sigmoid", "--epochs", "1", "--image-size", "32",
        "--batch-size", "200", cwd=tmp_path, env=env,
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "one example is" in line)
    assert row.split()[3:] == ["0.025", "points", "0.25", "points", "0.50", "points"]


LONG_RECIPE = """
[recipes.long_settings]
description = "A recipe whose settings and description are long enough to wrap in the table"
dataset = "shapes"
backbone = "small_cnn"
head = "gap_sigmoid"
epochs = 10
image_size = 160
lr_schedule = "cosine"
warmup_epochs = 1
class_weight = "balanced"
augment = true
augment_views = 4
keep = "best"
"""


def test_list_wraps_cells_between_words(tmp_path: Path):
    write(tmp_path / "registry.toml", LONG_RECIPE)

    result = run_zoo("list", cwd=tmp_path, env={"ZOO_REGISTRY": None})

    assert result.exit_code == 0, result.stderr
    words = result.stdout.split()
    for setting in ("lr_schedule=cosine,", "class_weight=balanced,", "warmup_epochs=1,"):
        assert setting in words
    assert "long_settings" in words
    assert max(map(len, result.stdout.splitlines())) <= 120  # the width of a piped zoo


@pytest.mark.parametrize("width", [12, 30, 60])
def test_a_table_narrower_than_its_words_still_fits_the_terminal(width: int):
    from rich.console import Console

    from zoo.console.wrapping import WordTable

    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    for columns in (1, 3):
        table = WordTable()
        for column in range(columns):
            table.add_column(f"c{column}", overflow="fold")
        table.add_row(*["a_rather_long_unbroken_word and more words here"] * columns)
        console.print(table)

    lines = console.export_text().splitlines()
    assert lines and max(map(len, lines)) <= width


@pytest.mark.parametrize("width", [60, 90])
def test_short_values_stay_on_one_line_while_long_ones_fold(width: int):
    from rich.console import Console

    from zoo.console.wrapping import WordTable

    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    table = WordTable()
    for name in ("name", "source", "status"):
        table.add_column(name, overflow="fold")
    table.add_row("fails_import", "entry point", "failed: " + "/tmp/a/very/long/path/" * 4)
    console.print(table)

    text = console.export_text()
    assert "entry point" in text
    assert max(map(len, text.splitlines())) <= width


def test_a_dry_run_shows_the_data_summary_when_the_data_is_here(isolated: Path):
    """It checks the data as a run would (per-class counts, warnings), and trains nothing."""
    result = run_zoo("run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--dry-run")

    said = result.stdout + result.stderr
    assert result.exit_code == 0, result.stderr
    assert "data: shapes, 2 classes" in said
    assert "one example is" in said and "validation" in said
    assert not (isolated / "runs").exists()


def test_a_dry_run_downloads_no_data_and_says_so(isolated: Path):
    """The tutorial's data is an 800 MB archive: a dry run names it and goes on."""
    result = run_zoo(
        "run", "--recipe", "tutorial_transfer", "--dry-run", "--set", "backbone.weights=none",
        env=offline_env(),
    )  # fmt: skip

    said = " ".join(result.stderr.split())
    assert result.exit_code == 0, result.stderr
    assert "Total params: 23,589,761" in " ".join(result.stdout.split())
    assert "dry run: the data summary is left out: cats_vs_dogs's files may not be here" in said
    assert "zoo fetch cats_vs_dogs" in said
    assert "Connection refused" not in said  # nothing was even tried
