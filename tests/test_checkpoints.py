"""Checkpoints on their own: save, find the latest, restore, and what a resumed run takes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import corrupt, tiny_classifier, truncate

import zoo
from zoo.train.durability import checkpoints
from zoo.train.durability.checkpoints import CheckpointState, Resume


def trained(seed: int = 0):
    """A tiny model and an Adam optimizer with non-zero state."""
    import keras

    model = tiny_classifier(seed=seed)
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.build(model.trainable_variables)
    for variable in optimizer.variables:
        variable.assign(np.full(variable.shape, seed + 0.5, dtype=variable.dtype))
    return model, optimizer


def values(variables) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in variables]


def state(epoch: int, **fields) -> CheckpointState:
    rows = tuple({"epoch": e, "stage": "head", "val_loss": 1.0 / e} for e in range(1, epoch + 1))
    return CheckpointState(epoch=epoch, stage_epoch=epoch, history=rows, **fields)


def test_a_saved_checkpoint_is_the_latest_and_restores_model_and_optimizer(tmp_path: Path):
    model, optimizer = trained(seed=1)
    checkpoints.save(tmp_path, state(1), model, optimizer)
    fresh, fresh_optimizer = trained(seed=2)

    found = checkpoints.latest(tmp_path)
    assert found is not None
    checkpoints.restore(found, fresh, fresh_optimizer)

    assert found.state == state(1)
    for a, b in zip(values(fresh.weights), values(model.weights), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(values(fresh_optimizer.variables), values(optimizer.variables), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_two_newest_checkpoints_are_kept(tmp_path: Path):
    model, optimizer = trained()
    for epoch in (1, 2, 3):
        checkpoints.save(tmp_path, state(epoch), model, optimizer)

    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0002", "epoch-0003", "latest.json"]
    assert json.loads((folder / "latest.json").read_text()) == {"epoch": 3, "path": "epoch-0003"}


def test_a_torn_checkpoint_and_a_pointer_to_it_are_ignored(tmp_path: Path):
    model, optimizer = trained()
    checkpoints.save(tmp_path, state(2), model, optimizer)
    folder = tmp_path / "checkpoints"
    # What SIGKILL in the middle of writing epoch 3 leaves behind.
    torn = folder / ".epoch-0003.abc123"
    torn.mkdir()
    (torn / checkpoints.WEIGHTS).write_bytes(b"\x89HDF half a file")
    (folder / "epoch-0003").mkdir()  # renamed, but its state.json never written
    (folder / "latest.json").write_text('{"epoch": 3, "path": "epoch-0003"}')

    found = checkpoints.latest(tmp_path)

    assert found is not None and found.epoch == 2


def test_an_unreadable_pointer_falls_back_to_the_newest_folder(tmp_path: Path):
    model, optimizer = trained()
    checkpoints.save(tmp_path, state(4), model, optimizer)
    (tmp_path / "checkpoints" / "latest.json").write_text("{not json")

    found = checkpoints.latest(tmp_path)

    assert found is not None and found.epoch == 4


def test_a_run_without_checkpoints_has_none(tmp_path: Path):
    assert checkpoints.latest(tmp_path) is None


#: Damage done to the newest checkpoint's folder, and how it is named.
DAMAGE = {
    "weights truncated": (
        lambda f: truncate(f / "model.weights.h5"),
        "model.weights.h5 is truncated (",
    ),
    "weights corrupted": (
        lambda f: corrupt(f / "model.weights.h5"),
        "model.weights.h5 is corrupted (its SHA-256 differs",
    ),
    "optimizer longer": (
        lambda f: (f / "optimizer.npz").write_bytes((f / "optimizer.npz").read_bytes() * 2),
        "optimizer.npz is longer than when it was written",
    ),
    "optimizer missing": (lambda f: (f / "optimizer.npz").unlink(), "optimizer.npz is missing"),
    "state garbled": (lambda f: truncate(f / "state.json"), "state.json is not valid JSON"),
    "state missing": (lambda f: (f / "state.json").unlink(), "state.json is missing"),
    "state of nothing": (
        lambda f: (f / "state.json").write_text("{}"),
        "state.json is not a checkpoint's state",
    ),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_checkpoint_is_named_and_the_one_before_it_found(tmp_path: Path, damage: str):
    model, optimizer = trained()
    for epoch in (2, 3):
        checkpoints.save(tmp_path, state(epoch), model, optimizer)
    do, named = DAMAGE[damage]
    do(tmp_path / "checkpoints" / "epoch-0003")

    found, damaged = checkpoints.find(tmp_path)

    assert found is not None and found.epoch == 2
    [newest] = damaged
    assert newest.path.name == "epoch-0003" and newest.problem.startswith(named)


def test_when_every_checkpoint_is_damaged_none_is_found(tmp_path: Path):
    model, optimizer = trained()
    for epoch in (2, 3):
        checkpoints.save(tmp_path, state(epoch), model, optimizer)
        truncate(tmp_path / "checkpoints" / f"epoch-{epoch:04d}" / "optimizer.npz")

    found, damaged = checkpoints.find(tmp_path)

    assert found is None and [d.path.name for d in damaged] == ["epoch-0003", "epoch-0002"]


def test_a_checkpoint_without_digests_that_cannot_be_read_is_damaged_not_a_mismatch(
    tmp_path: Path,
):
    """Checkpoints written before digests were recorded fail when read, and say why."""
    model, optimizer = trained()
    folder = checkpoints.save(tmp_path, state(1), model, optimizer).path
    written = json.loads((folder / "state.json").read_text())
    del written["files"]
    (folder / "state.json").write_text(json.dumps(written))
    truncate(folder / "model.weights.h5")
    found = checkpoints.latest(tmp_path)
    assert found is not None

    with pytest.raises(zoo.ZooError, match=r"is damaged: its model\.weights\.h5 cannot be read"):
        checkpoints.restore(found, *trained(seed=2))


def test_a_checkpoint_that_does_not_fit_the_model_is_a_clear_error(tmp_path: Path):
    model, optimizer = trained()
    checkpoints.save(tmp_path, state(1), model, optimizer)
    other = tiny_classifier(units=3)
    other_optimizer = trained()[1]
    found = checkpoints.latest(tmp_path)
    assert found is not None

    with pytest.raises(zoo.ZooError, match="does not fit the model built now"):
        checkpoints.restore(found, other, other_optimizer)


def test_state_json_keeps_the_shape_runs_have_always_written():
    head_only = state(2, stage_done=True, weights="head", backbone_sha256="ab" * 32)
    written_before = {
        "stage": "head",
        "stage_epoch": 2,
        "stage_done": True,
        "history": [dict(row) for row in head_only.history],
        "weights": "head",
        "backbone_sha256": "ab" * 32,
        "epoch": 2,
    }

    assert head_only.to_json() == written_before
    assert list(head_only.to_json()) == list(written_before)
    assert CheckpointState.from_json(written_before) == head_only
    assert "weights" not in state(1).to_json()


def test_a_resume_skips_the_head_stage_once_it_had_ended():
    def skips(**fields) -> bool:
        checkpoint = checkpoints.Checkpoint(Path("run/checkpoints/epoch-0001"), state(1, **fields))
        return Resume(checkpoint, assembled=None, backbone_digest=str).skips_head

    assert not skips()
    assert skips(stage_done=True)
    assert skips(stage="fine_tune")
    assert not Resume(None, assembled=None, backbone_digest=str).skips_head


class Assembled:
    """The two models a checkpoint can hold, as ``zoo.model.assemble.Assembled`` has them."""

    def __init__(self) -> None:
        self.model, self.optimizer = trained(seed=3)
        self.head = self.model


def test_a_checkpoint_of_the_previous_stage_restores_weights_and_starts_afresh(tmp_path: Path):
    model, optimizer = trained(seed=1)
    checkpoints.save(tmp_path, state(2, stage_done=True), model, optimizer)
    assembled = Assembled()
    resume = Resume(checkpoints.latest(tmp_path), assembled, backbone_digest=str)

    start = resume.restore("fine_tune", assembled.optimizer)

    assert start == 0
    np.testing.assert_array_equal(values(assembled.model.weights)[0], values(model.weights)[0])
    assert values(assembled.optimizer.variables)[-1].max() == 3.5  # its own, not restored
    assert resume.restore("fine_tune", assembled.optimizer) == 0  # taken once


def test_a_head_only_checkpoint_needs_the_same_frozen_backbone(tmp_path: Path):
    model, optimizer = trained()
    saved = state(1, weights="head", backbone_sha256="1" * 64)
    checkpoints.save(tmp_path, saved, model, optimizer)
    assembled = Assembled()

    same = Resume(checkpoints.latest(tmp_path), assembled, backbone_digest=lambda: "1" * 64)
    other = Resume(checkpoints.latest(tmp_path), assembled, backbone_digest=lambda: "2" * 64)

    assert same.restore("head", assembled.optimizer) == 1
    with pytest.raises(zoo.ZooError, match="the frozen backbone built now differs"):
        other.restore("head", assembled.optimizer)
