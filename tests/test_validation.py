"""Every setting, parameter and environment variable zoo reads is checked: a bad one is
exit 2 with a message naming it, never a traceback, never a plugin blamed for it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import run_zoo, write, zoo_executable

import zoo
from zoo.params import Param

NAMES = ["shapes", "small_cnn", "gap_sigmoid"]


def assert_refused(result, *named: str) -> None:
    """Exit 2, no traceback, and a message naming each of ``named``."""
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for text in named:
        assert text in result.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--learning-rate", "nan"], "learning_rate"),
        (["--learning-rate", "inf"], "learning_rate"),
        (["--fine-tune-lr=inf"], "fine_tune_lr"),
        (["--seed", "100000000000000000000000"], "seed"),  # 1e23: past int64
        (["--seed", "4294967296"], "seed"),  # numpy takes 32-bit seeds
        (["--batch-size", "100000000000000000000"], "batch_size"),  # 1e20
        (["--epochs", "10000000000"], "epochs"),
        (["--augment-zoom", "1.5"], "augment_zoom"),  # Keras' RandomZoom takes up to 1
        (["--set", "head.dropout=nan"], "dropout"),
        (["--set", "head.dropout=1.5"], "dropout"),  # was exit 1, "report to plugin authors"
        (["--set", "dataset.noise=inf"], "noise"),
        (["--set", "dataset.num_images=100000000000000000000"], "num_images"),
        (["--set", "backbone.filters=32,100000000000"], "filters"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_zoo_run_refuses_a_value_out_of_bounds(zoo_cli, args: list[str], named: str):
    result = zoo_cli("run", *NAMES, *args, "--dry-run")

    assert_refused(result, named)


def test_the_zoo_command_refuses_a_value_out_of_bounds():
    """The twin of the cases above through the real entry point, in a new process."""
    result = run_zoo("run", *NAMES, "--set", "head.dropout=1.5", "--dry-run")

    assert_refused(result, "dropout", "below 1")


def test_a_registry_files_run_table_is_checked_the_same(isolated: Path):
    write(isolated / "registry.toml", "[run]\nseed = 1e23\nlearning_rate = nan\n")

    result = run_zoo("run", *NAMES, "--dry-run")

    assert_refused(result, "registry.toml:2", "'seed'")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_predict_and_evaluate_check_their_batch_size(command: str, isolated: Path):
    args = ["runs/none", "x.png"] if command == "predict" else ["runs/none"]

    result = run_zoo(command, *args, "--batch-size", "100000000000000000000")

    assert_refused(result, "--batch-size")


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe[\x00r\x00u\x00n\x00]\x00", b"[run]\nepochs = 3\n\x89PNG\r\n\x1a\n\x00\x00"],
    ids=["utf-16", "binary"],
)
def test_a_registry_file_that_is_not_utf8_text_names_the_file_and_line(
    content: bytes, isolated: Path
):
    (isolated / "registry.toml").write_bytes(content)

    result = run_zoo("list")

    assert_refused(result, "registry.toml:")


def test_numbers_are_finite_and_fit_64_bits():
    rate, count = Param("rate", float), Param("count", int)

    for text in ("nan", "inf", "-inf", "1e400"):
        with pytest.raises(ValueError, match="finite"):
            rate.coerce(text)
    for value in (2**63, 1e23, "1" * 30):
        with pytest.raises(ValueError, match="64 bits"):
            count.coerce(value)
    assert count.coerce(2**63 - 1) == 2**63 - 1


def test_declared_bounds_are_checked_and_described():
    dropout = Param("dropout", float, 0.0, minimum=0, below=1)

    assert dropout.coerce("0.5") == 0.5
    with pytest.raises(ValueError, match="not below 1"):
        dropout.coerce("1")
    assert dropout.allowed == "0 or more, below 1"
    assert Param("seed", int, minimum=0, maximum=2**32 - 1).allowed == "0 to 4294967295"


def test_a_heads_dropout_is_checked_before_its_builder_runs():
    with pytest.raises(zoo.ZooError, match="not below 1"):
        zoo.resolve_run(zoo.load_registry(), NAMES, sets=["head.dropout=1.5"])


# Environment variables -------------------------------------------------------------------

CACHE_VARIABLES = [
    "ZOO_CACHE_DIR",
    "XDG_CACHE_HOME",
    "KERAS_HOME",
    "TFDS_DATA_DIR",
    "KAGGLEHUB_CACHE",
]


@pytest.mark.parametrize("variable", CACHE_VARIABLES)
@pytest.mark.parametrize("where", ["file", "under a file"])
def test_a_cache_variable_pointing_at_a_file_is_named(variable: str, where: str, isolated: Path):
    blocker = write(isolated / "a-file", "not a folder\n")
    value = str(blocker if where == "file" else blocker / "cache")
    env = {variable: value, **({"ZOO_CACHE_DIR": None} if variable == "XDG_CACHE_HOME" else {})}

    result = run_zoo("list", env=env)

    assert_refused(result, f"${variable}", value, "is a file")


def test_keras_home_at_a_file_is_named_before_a_run_starts(isolated: Path):
    blocker = write(isolated / "a-file", "not a folder\n")

    result = run_zoo("run", *NAMES, "--dry-run", env={"KERAS_HOME": str(blocker)})

    assert_refused(result, "$KERAS_HOME", str(blocker))
    assert "plugin" not in result.stderr


@pytest.mark.parametrize("variable", ["ZOO_CACHE_DIR", "XDG_CACHE_HOME", "KERAS_HOME"])
def test_doctor_reports_a_cache_variable_pointing_at_a_file_as_a_problem(
    variable: str, isolated: Path
):
    blocker = write(isolated / "a-file", "not a folder\n")
    env = {
        variable: str(blocker),
        **({"ZOO_CACHE_DIR": None} if variable == "XDG_CACHE_HOME" else {}),
    }

    result = run_zoo("doctor", "--json", env=env)

    assert result.exit_code == 1, result.stderr
    found = json.loads(result.stdout)
    problems = [f for f in found["findings"] if f["level"] == "problem"]
    assert not found["healthy"]
    assert any(f["topic"].startswith("cache") and str(blocker) in f["text"] for f in problems)
    assert any(cache["problem"] for cache in found["caches"])


def test_a_read_only_cache_folder_is_refused(isolated: Path):
    """On a file system mounted read-only, in a user and mount namespace of its own."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a read-only file system")
    folder = isolated / "read-only"
    folder.mkdir()
    script = (
        f"mount -t tmpfs -o ro,size=60k tmpfs {folder} || exit 99; exec {zoo_executable()} list"
    )
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script]
    env = {**os.environ, "ZOO_CACHE_DIR": str(folder)}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    if proc.returncode == 99 or "unshare:" in proc.stderr:
        pytest.skip(f"this kernel refuses a private read-only mount: {proc.stderr.strip()}")

    assert proc.returncode == 2, proc.stderr
    assert "$ZOO_CACHE_DIR" in proc.stderr and "cannot be written" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("action", ["list", "clear", "prune"])
def test_zoo_cache_names_a_cache_folder_that_is_a_file(action: str, isolated: Path):
    blocker = write(isolated / "a-file", "not a folder\n")

    by_variable = run_zoo("cache", action, env={"ZOO_CACHE_DIR": str(blocker)})
    by_flag = run_zoo("cache", action, "--dir", str(blocker))

    assert_refused(by_variable, "$ZOO_CACHE_DIR", str(blocker))
    assert_refused(by_flag, "--dir", str(blocker))
