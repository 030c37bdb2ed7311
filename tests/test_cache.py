"""The feature cache folder: a size limit kept by removing the least recently used
entries, never one in use; ``zoo cache list|clear|prune``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_RUN, run_zoo, write

from zoo.runtime import runners
from zoo.train.features import cache, store

FROZEN_RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN]
FROZEN_RUN += ["--set", "backbone.trainable=false", "--runtime", "tensorflow", "--json"]
HOLD = """
import sys
from pathlib import Path

from zoo.runtime import runners
from zoo.train.features import store

held = store.lease(Path(sys.argv[1]))
print("held" if held else "gone", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def folder() -> Path:
    """The feature cache folder of the test (``conftest.isolated`` sets ``ZOO_CACHE_DIR``)."""
    return Path(os.environ["ZOO_CACHE_DIR"]) / "features"


def entry(folder: Path, key: str, count: int, hours_ago: float, split: str = "train") -> Path:
    """A cache entry of ``count`` 4-float features, last used ``hours_ago``."""
    path = folder / key
    path.mkdir(parents=True)
    batch = (np.zeros((count, 4), "float32"), np.zeros(count, "int32"))
    meta = cache.extract_to(path, [batch])
    about = {"dataset": "shapes", "backbone": "small_cnn", "split": split, "image_size": 32}
    meta |= {"format": cache.FORMAT, "about": about}
    (path / store.META).write_text(json.dumps(meta))
    used = time.time() - hours_ago * 3600
    (path / store.LOCK).touch()
    os.utime(path / store.LOCK, (used, used))
    return path


def keys(folder: Path) -> list[str]:
    return [found.key for found in store.entries(folder)]


def test_pruning_removes_the_least_recently_used_until_the_rest_fit(folder: Path):
    for key, hours in (("old", 30), ("recent", 1), ("middle", 5)):
        entry(folder, key, 100, hours)  # 2,000 bytes of features and labels each
    size = store.entries(folder)[0].size

    pruned = store.prune(folder, 2 * size)

    assert [e.key for e in pruned.removed] == ["old"]
    assert keys(folder) == ["middle", "recent"]
    assert (pruned.size, pruned.freed, pruned.over) == (2 * size, size, False)


def test_an_entry_in_use_is_never_removed(folder: Path):
    entry(folder, "used", 100, 30)
    entry(folder, "idle", 100, 1)
    held = store.lease(folder / "used")

    pruned = store.clear(folder)

    assert [e.key for e in pruned.kept_in_use] == ["used"]
    assert keys(folder) == ["used"]
    assert pruned.over
    held.release()
    store.clear(folder)
    assert keys(folder) == []


def test_an_entry_another_process_uses_is_kept_until_that_process_ends(folder: Path):
    path = entry(folder, "shared", 10, 2)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"

        while_held = run_zoo("cache", "clear")
        listed = run_zoo("cache", "list", "--json").json()
    finally:
        holder.communicate("")  # the holder exits; the kernel drops its lock

    assert while_held.exit_code == 0
    assert "kept 1 in use by a running process" in while_held.stderr
    assert [(e["key"], e["in_use"]) for e in listed["entries"]] == [("shared", True)]
    assert run_zoo("cache", "clear").exit_code == 0
    assert keys(folder) == []


def test_folders_left_by_writers_that_died_are_removed(folder: Path):
    abandoned = folder / ".key.abandoned"
    abandoned.mkdir(parents=True)
    (abandoned / store.LOCK).touch()  # locked by no one: its writer is gone
    starting = folder / ".key.starting"
    starting.mkdir()  # no lock yet: its writer is about to take it
    writing = folder / ".key.writing"
    writing.mkdir()
    held = store.lease(writing)

    store.prune(folder, 10**9)

    assert not abandoned.exists()
    assert starting.exists() and writing.exists()
    held.release()


def test_a_run_keeps_the_cache_under_its_limit_never_removing_its_own(zoo_cli, folder):
    first = zoo_cli(*FROZEN_RUN).json()
    limit = ["--feature-cache-max", "1KB"]  # less than one run's features

    second = zoo_cli(*FROZEN_RUN, "--image-size", "24", *limit)

    assert second.exit_code == 0, second.stderr
    assert "removed 3 least recently used entries" in second.stderr
    assert "is over its 1.0 KB limit: entries in use are kept" in second.stderr
    left = set(keys(folder))
    assert left == {used["key"] for used in second.json()["feature_cache"].values()}
    assert not left & {used["key"] for used in first["feature_cache"].values()}


def test_cache_list_shows_what_a_run_cached(zoo_cli, folder):
    metrics = zoo_cli(*FROZEN_RUN).json()

    result = run_zoo("cache", "list", "--json")

    assert result.exit_code == 0, result.stderr
    listed = result.json()
    assert listed["directory"] == str(folder)
    assert {e["key"]: e["split"] for e in listed["entries"]} == {
        used["key"]: split for split, used in metrics["feature_cache"].items()
    }
    first = listed["entries"][0]
    assert (first["dataset"], first["backbone"], first["pooled"]) == ("shapes", "small_cnn", True)
    assert listed["size"] == sum(e["size"] for e in listed["entries"]) > 0
    table = run_zoo("cache", "list")
    assert "shapes" in table.stdout and "small_cnn" in table.stdout


def test_cache_list_says_where_each_entry_came_from(zoo_cli, folder):
    """The data's parameters (an image_folder's path), the weights, the augmentation."""
    pretrained = [a if a != "small_cnn" else "shapes_cnn" for a in FROZEN_RUN]
    zoo_cli(*pretrained, "--augment", "--augment-views", "2", "--set", "dataset.num_images=48")

    listed = run_zoo("cache", "list", "--json").json()["entries"]
    table = run_zoo("cache", "list").stdout.split()  # the words: cells wrap between them

    train = next(e for e in listed if e["split"] == "train")
    assert train["dataset_params"]["num_images"] == 48
    assert train["backbone_params"] == {"weights": "shapes4", "trainable": False}
    assert (train["views"], train["augmentation"]["flip"]) == (2, "horizontal")
    assert {e["views"] for e in listed if e["split"] != "train"} == {None}
    assert "(num_images=48," in table and "(weights=shapes4," in table
    assert "seed=" not in " ".join(table)  # a dataset shows what differs from its defaults
    assert "augmented" in table


def test_a_damaged_entry_is_listed_as_such_and_extracted_again(zoo_cli, folder):
    # On OpenVINO where it is installed, which converts only when it finds the damage.
    auto = [*FROZEN_RUN, "--runtime", "openvino" if runners.installed() else "tensorflow"]
    metrics = zoo_cli(*auto).json()
    train = folder / metrics["feature_cache"]["train"]["key"]
    with open(train / store.FEATURES, "r+b") as f:
        f.truncate(10)

    listed = run_zoo("cache", "list", "--json").json()["entries"]
    again = zoo_cli(*auto).json()

    damaged = {e["key"]: e.get("damaged") for e in listed}
    assert damaged[train.name] == "features.f32 is truncated (10 of 8,192 bytes)"
    assert again["feature_cache"]["train"] == {"key": train.name, "source": "extracted"}
    assert again["runtime"] == metrics["runtime"]
    assert again["history"] == metrics["history"]


def test_prune_takes_its_size_from_the_registry_file(isolated: Path, folder: Path):
    for key, hours in (("a", 3), ("b", 2), ("c", 1)):
        entry(folder, key, 100, hours)
    write(isolated / "registry.toml", '[cache]\nmax_size = "5KB"\n')

    result = run_zoo("cache", "prune")

    assert result.exit_code == 0, result.stderr
    assert keys(folder) == ["b", "c"]
    assert run_zoo("cache", "prune", "--max-size", "0").exit_code == 0
    assert keys(folder) == []


def test_a_bad_size_names_where_it_was_given(isolated: Path):
    write(isolated / "registry.toml", '[run]\nepochs = 2\n\n[cache]\nmax_size = "huge"\n')

    from_file = run_zoo("cache", "prune")
    empty = write(isolated / "empty" / "registry.toml", "")
    from_flag = run_zoo("cache", "prune", "--max-size", "lots", "--registry", str(empty))

    assert from_file.exit_code == 2
    assert "registry.toml:5: [cache] max_size takes a size such as 512MB" in from_file.stderr
    assert from_flag.exit_code == 2
    assert "--max-size takes a size such as 512MB" in from_flag.stderr
