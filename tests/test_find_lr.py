"""``zoo run --find-lr``: the learning-rate range test, its figure and its suggestion.

The arithmetic (rates, the stop, fastai's valley) is checked on numbers; the command runs
as a user runs it, in a subprocess, on a frozen backbone (cached features) and a
trainable one (images), and again on a feature cache another process damaged.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import pytest
from helpers import run_zoo

from zoo.train.features import store
from zoo.train.lr_find import DIVERGED, Curve, rates, valley

TINY = ("--set", "dataset.num_images=120", "--image-size", "24", "--batch-size", "8")
FROZEN = ("run", "shapes", "small_cnn", "gap_sigmoid", *TINY, "--set", "backbone.trainable=false")
PNG = b"\x89PNG\r\n\x1a\n"


def test_the_rates_rise_evenly_on_a_log_scale_from_start_to_end():
    found = rates(1e-7, 10.0, 100)

    assert len(found) == 100
    assert found[0] == pytest.approx(1e-7) and found[-1] == pytest.approx(10.0)
    steps = {round(math.log10(b / a), 9) for a, b in itertools.pairwise(found)}
    assert steps == {round(8 / 99, 9)}


def test_the_valley_is_two_thirds_down_the_longest_fall():
    # Flat, then falling from index 10 to 40, then rising: the fall is 30 long.
    losses = (
        [2.0] * 10 + [2.0 - 0.05 * i for i in range(1, 31)] + [0.5 + 0.2 * i for i in range(20)]
    )

    index = valley(losses)

    assert 20 <= index <= 30  # past the flat start, before the bottom (index 39)
    assert losses[index] < losses[9]


def test_the_test_stops_when_the_loss_diverges_or_is_not_finite():
    diverging = Curve()
    going = [
        diverging.add(rate, 1.0 if i < 30 else 1.0 * 1.5 ** (i - 29))
        for i, rate in enumerate(rates())
    ]
    assert going.index(False) < len(going) - 1
    assert f"passed {DIVERGED:g}x its lowest" in diverging.stopped

    broken = Curve()
    assert broken.add(1e-3, 0.7) and not broken.add(1e-2, float("nan"))
    assert "the loss became nan" in broken.stopped
    assert broken.suggestion() is None  # two batches say nothing


def test_find_lr_on_a_frozen_backbone_trains_on_cached_features_and_saves_no_model(
    isolated: Path,
):
    result = run_zoo(*FROZEN, "--find-lr", "--json")

    assert result.exit_code == 0, result.stderr
    found = result.json()["lr_find"]
    assert 1e-7 <= found["suggested_learning_rate"] <= 10
    folder = isolated / found["folder"]
    assert folder.parent == isolated / "runs" / "lr-find"  # relative, as --output is
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "lr_find.json",
        "lr_find.png",
    ]
    assert (folder / "lr_find.png").read_bytes().startswith(PNG)
    curve = json.loads((folder / "lr_find.json").read_text())
    assert curve["rates"] == sorted(curve["rates"]) and len(curve["losses"]) == found["batches"]
    assert json.loads((folder / "config.json").read_text())["backbone"]["name"] == "small_cnn"
    # Features were extracted into the cache; no run directory, no model.
    assert "extracting features: train: done" in result.stderr
    assert list((isolated / "runs").iterdir()) == [isolated / "runs" / "lr-find"]
    assert not list(isolated.rglob("model.keras"))


def test_find_lr_heals_features_another_process_damaged_and_finds_the_same_curve(
    isolated: Path,
):
    first = run_zoo(*FROZEN, "--find-lr", "--json")
    assert first.exit_code == 0, first.stderr
    for features in (Path(os.environ["ZOO_CACHE_DIR"]) / "features").glob(f"*/{store.FEATURES}"):
        data = bytearray(features.read_bytes())
        data[len(data) // 2] ^= 0xFF
        features.write_bytes(bytes(data))

    again = run_zoo(*FROZEN, "--find-lr", "--json")

    assert again.exit_code == 0, again.stderr
    assert "were damaged" in again.stderr and "Traceback" not in again.stderr
    curves = [
        json.loads((Path(r.json()["lr_find"]["folder"]) / "lr_find.json").read_text())
        for r in (first, again)
    ]
    assert curves[0]["losses"] == curves[1]["losses"]


def test_find_lr_on_a_trainable_backbone_trains_on_images_and_prints_its_suggestion(
    isolated: Path,
):
    result = run_zoo("run", "shapes", "small_cnn", "gap_sigmoid", *TINY, "--find-lr")

    assert result.exit_code == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("suggested learning rate: ") or line.startswith("no learning rate")
    assert "features:" not in result.stderr  # images, not cached features
    assert "figure: runs/lr-find/" in result.stderr


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--dry-run",), "--dry-run stops before any"),
        (("--resume", "runs/RUN"), "--find-lr does not train"),
    ],
)
def test_find_lr_refuses_what_cannot_go_with_it(isolated: Path, flags, says):
    names = () if "--resume" in flags else ("shapes", "small_cnn", "gap_sigmoid")
    result = run_zoo("run", *names, "--find-lr", *flags)

    assert result.exit_code == 2
    assert says in result.stderr and "Traceback" not in result.stderr
