"""The feature cache heals: damaged entries are named in one line and extracted again;
a full disk is an error that names the path and the space, and the run resumes; two
runs, and a cache clean-up, at once never break one another."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_RUN, run_zoo, zoo_executable

from zoo.train.features import cache as features
from zoo.train.features import store

FROZEN_RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN]
FROZEN_RUN += ["--set", "backbone.trainable=false", "--runtime", "tensorflow", "--json"]
BATCHES = [
    (np.arange(24, dtype="float32").reshape(6, 4), np.arange(6, dtype="int32")),
    (np.ones((2, 4), "float32"), np.zeros(2, "int32")),
]


def truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def garble(path: Path) -> None:
    """Change bytes in the middle of ``path``, keeping its size: only a checksum tells."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def not_json(path: Path) -> None:
    path.write_text('{"count": 8, "sha', encoding="utf-8")


CHANGED = "is corrupted (its CRC-32 differs from when it was written)"
DAMAGE = [
    (store.FEATURES, truncate, "features.f32 is truncated (64 of 128 bytes)"),
    (store.FEATURES, garble, f"features.f32 {CHANGED}"),
    (store.FEATURES, Path.unlink, "features.f32 is missing"),
    (store.LABELS, truncate, "labels.i32 is truncated (16 of 32 bytes)"),
    (store.LABELS, garble, f"labels.i32 {CHANGED}"),
    (store.LABELS, Path.unlink, "labels.i32 is missing"),
    (store.META, truncate, "meta.json is not valid JSON (line 1)"),
    (store.META, not_json, "meta.json is not valid JSON (line 1)"),
    (store.META, Path.unlink, "meta.json is missing"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "damage", "problem"), DAMAGE)
def test_a_damaged_entry_is_said_in_one_line_and_extracted_again(
    tmp_path: Path, name, damage, problem
):
    said: list[tuple[Path, str]] = []
    cache = features.FeatureCache(tmp_path, warn=lambda folder, text: said.append((folder, text)))
    first, _ = cache.get("key", lambda folder: features.extract_to(folder, BATCHES))
    cache.close()
    damage(tmp_path / "key" / name)

    cache = features.FeatureCache(tmp_path, warn=lambda folder, text: said.append((folder, text)))
    again, _ = cache.get("key", lambda folder: features.extract_to(folder, BATCHES))
    cache.close()

    assert said == [(tmp_path / "key", problem)]
    assert again.source == "extracted"
    np.testing.assert_array_equal(again.features, first.features)
    np.testing.assert_array_equal(again.labels, first.labels)
    assert store.damage(tmp_path / "key", checksums=True) is None


def test_an_intact_entry_is_used_without_a_word(tmp_path: Path):
    said: list[str] = []
    features.FeatureCache(tmp_path).get("key", lambda f: features.extract_to(f, BATCHES))

    found, _ = features.FeatureCache(tmp_path, warn=lambda *a: said.append(a)).get(
        "key", lambda f: pytest.fail("an intact entry is extracted again")
    )

    assert (found.source, said) == ("cache", [])


def test_a_run_heals_an_entry_a_previous_process_wrote_and_another_damaged(zoo_cli):
    first = zoo_cli(*FROZEN_RUN).json()
    folder = Path(os.environ["ZOO_CACHE_DIR"]) / "features" / first["feature_cache"]["train"]["key"]
    garble(folder / store.FEATURES)

    again = run_zoo(*FROZEN_RUN)

    assert again.exit_code == 0, again.stderr
    (line,) = [line for line in again.stderr.splitlines() if "damaged" in line]
    assert line.startswith(f"warning: cached features {folder} were damaged (features.f32 is")
    assert "Traceback" not in again.stderr
    metrics = again.json()
    assert metrics["feature_cache"]["train"]["source"] == "extracted"
    assert metrics["history"] == first["history"]
    assert "damaged_cache" in [warning["code"] for warning in metrics["warnings"]]


# A full disk -----------------------------------------------------------------------------


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "runs").iterdir() if p.is_dir())


def test_a_full_disk_names_the_path_and_the_space_and_the_run_resumes(
    zoo_cli, isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    """The disk fills while extracting; then, resumed, at the checkpoint; then at the model.
    Each time: exit 2 naming the path and the space, nothing partial; the last resume, a
    new process, completes the run."""
    cache = Path(os.environ["ZOO_CACHE_DIR"]) / "features"
    run_dir: Path | None = None
    for point, what in [
        ("features", "writing the cached features to /"),
        ("checkpoint", "writing the checkpoint of epoch 1 to runs/"),
        ("model", "writing the model to runs/"),
    ]:
        monkeypatch.setenv("ZOO_TEST_ENOSPC", point)
        resume = ["run", "--resume", str(run_dir), "--json"] if run_dir else FROZEN_RUN
        full = zoo_cli(*resume)
        (absolute,) = run_dirs(isolated)
        run_dir = absolute.relative_to(isolated)

        message = " ".join(full.stderr.split())  # rich wraps long lines
        assert full.exit_code == 2, full.stderr
        assert f"the disk is full: {what}" in message
        assert "nothing partial was kept" in message and " free for it; " in message
        assert f"then resume the run: zoo run --resume {run_dir}" in message
        assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no half entry
        assert not list(run_dir.glob("checkpoints/.*"))  # nor half a checkpoint
    monkeypatch.delenv("ZOO_TEST_ENOSPC")

    resumed = run_zoo("run", "--resume", str(run_dir), "--json")

    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["status"] == "completed"
    assert (run_dir / "model.keras").is_file()


# Runs at once ----------------------------------------------------------------------------


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [zoo_executable(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str]) -> dict:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    return json.loads(out)


def test_two_runs_extracting_the_same_features_at_once_agree(isolated: Path):
    runs = [start(*FROZEN_RUN, "--output", f"out-{n}") for n in range(2)]

    first, second = (finish(run) for run in runs)

    assert first["history"] == second["history"]
    assert first["feature_cache"] == {
        split: {"key": used["key"], "source": first["feature_cache"][split]["source"]}
        for split, used in second["feature_cache"].items()
    }
    folder = Path(os.environ["ZOO_CACHE_DIR"]) / "features"
    listed = store.entries(folder)
    assert {e.key for e in listed} == {used["key"] for used in first["feature_cache"].values()}
    assert all(store.damage(e.path, checksums=True) is None for e in listed)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_clearing_and_pruning_the_cache_during_a_run_never_breaks_it(zoo_cli):
    alone = zoo_cli(*FROZEN_RUN, "--epochs", "3").json()
    run = start(*FROZEN_RUN, "--epochs", "3")
    cleanups = 0
    while run.poll() is None:
        command = ("clear",) if cleanups % 2 else ("prune", "--max-size", "0")
        assert run_zoo("cache", *command).exit_code == 0
        cleanups += 1
        time.sleep(0.2)

    metrics = finish(run)

    assert cleanups > 3
    assert metrics["history"] == alone["history"]
