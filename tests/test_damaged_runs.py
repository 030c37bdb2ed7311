"""Damaged run directories, command by command (``zoo/storage/runs.py``,
``zoo/train/durability/resume.py``).

Each damage is named as what it is, with what to do: exit 2 without a traceback where
the command needs the damaged file, a warning where it does without it. A resume falls
back to an older intact checkpoint, or a best epoch it can still restore, and says so.

One tiny run is trained per module by earlier processes: stopped by Ctrl-C before its
test (checkpoints of epochs 2 and 3, the best epoch, no model.keras), and a copy of it
resumed to completion. Each case copies one of the two, damages it, and runs one
command in a new process. Damage of every file of a checkpoint and of ``best/`` is also
named by the fast tests in test_checkpoints.py and test_keep_best.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import TINY_RUN, Result, corrupt, library_noise, run_zoo, truncate
from PIL import Image

from zoo.runconfig import RunConfig
from zoo.train.durability.interrupts import ENV
from zoo.train.durability.resume import reopen

RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--epochs", "3"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``interrupted`` (Ctrl-C before the test) and ``completed`` (a copy, resumed)."""
    root = tmp_path_factory.mktemp("damaged-runs")
    env: dict[str, str | None] = {"ZOO_CACHE_DIR": str(root / "cache")}
    stopped = run_zoo(*RUN, cwd=root, env={**env, ENV: "test@3"})
    assert stopped.exit_code == 130, stopped.stderr
    [interrupted] = (root / "runs").iterdir()
    completed = root / "completed"
    shutil.copytree(interrupted, completed)
    finished = run_zoo("run", "--resume", str(completed), cwd=root, env=env)
    assert finished.exit_code == 0, finished.stderr
    return {"interrupted": interrupted, "completed": completed}


@dataclass(frozen=True)
class Case:
    """A damage done to a run directory, a command run on it, and what it must say.

    Args:
        damage: Done to a copy of the run directory.
        command: ``compare``, ``predict``, ``export``, ``evaluate`` (on the completed
            run) or ``resume`` (on the interrupted one).
        exit_code: What the command must exit with.
        says: Phrases its stderr holds (whitespace folded).
        then: Further checks of the run directory and the result.
    """

    damage: Callable[[Path], None]
    command: str
    exit_code: int
    says: tuple[str, ...]
    then: Callable[[Path, Result], None] | None = None


def model(run: Path) -> Path:
    return run / "model.keras"


def checkpoint(epoch: int, name: str) -> Callable[[Path], Path]:
    return lambda run: run / "checkpoints" / f"epoch-{epoch:04d}" / name


def best_weights(run: Path) -> Path:
    [folder] = (run / "best").glob("epoch-*")
    return folder / "model.weights.h5"


def truncated(where: Callable[[Path], Path]) -> Callable[[Path], None]:
    return lambda run: truncate(where(run))


def removed(where: Callable[[Path], Path]) -> Callable[[Path], None]:
    def remove(run: Path) -> None:
        path = where(run)
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return remove


def other_filters(run: Path) -> None:
    """The model built now differs, as after a plugin changed its architecture."""
    config = json.loads((run / "config.json").read_text())
    config["backbone"]["params"]["filters"] = "16,16,32"
    (run / "config.json").write_text(json.dumps(config))


def every_checkpoint_truncated(run: Path) -> None:
    for epoch in (2, 3):
        truncate(checkpoint(epoch, "optimizer.npz")(run))


def resumed_from(epoch: int, trains: list[int]) -> Callable[[Path, Result], None]:
    def check(run: Path, result: Result) -> None:
        record = result.json()
        assert record["status"] == "completed"
        assert record["resumed"][-1]["from_epoch"] == epoch
        assert [row["epoch"] for row in record["history"]] == [1, 2, 3]
        trained = [line for line in result.stderr.splitlines() if line.startswith("train epoch")]
        assert [line.split()[2] for line in trained] == [f"{e}/3:" for e in trains]

    return check


def assert_short(stderr: str) -> None:
    """A message to read, not Keras's dump of a variable's values."""
    error = stderr[stderr.index("error: ") :]
    assert len(error.splitlines()) <= 4 and "Target variable" not in error


def kept_since(epoch: int) -> Callable[[Path, Result], None]:
    def check(run: Path, result: Result) -> None:
        kept = result.json()["kept"]
        assert kept["since"] == epoch and kept["epoch"] >= epoch

    return check


def file(name: str) -> Callable[[Path], Path]:
    return lambda run: run / name


CONFIG, METRICS, LATEST = file("config.json"), file("metrics.json"), file("checkpoints/latest.json")
RESTORE_CONFIG = "restore config.json from a copy of the run directory"

#: Damage kind x command. Cases left out repeat a code path a case here takes (the
#: report of the change lists every pair tried).
CASES = {
    # model.keras: predict, export and evaluate need it; compare never reads it.
    "model truncated x predict": Case(
        truncated(model), "predict", 2,
        ("model.keras is damaged", "it may be truncated", "restore the file from a copy"),
    ),
    "model truncated x export": Case(
        truncated(model), "export", 2, ("model.keras is damaged", "it may be truncated"),
    ),
    "model truncated x evaluate": Case(
        truncated(model), "evaluate", 2, ("model.keras is damaged", "it may be truncated"),
    ),
    "model truncated x compare": Case(truncated(model), "compare", 0, ()),
    "model corrupted x export": Case(
        lambda run: corrupt(model(run)), "export", 2,
        ("model.keras is damaged", "fails its checksum"),
    ),
    "model missing x predict": Case(
        removed(model), "predict", 2,
        ("completed, but its model.keras is missing", "restore model.keras from a copy"),
    ),
    "model missing x evaluate": Case(
        removed(model), "evaluate", 2, ("completed, but its model.keras is missing",),
    ),
    # config.json: compare, evaluate (the test split) and --resume need it.
    "config missing x compare": Case(
        removed(CONFIG), "compare", 2,
        ("config.json is missing", RESTORE_CONFIG, "or leave", "out of the comparison"),
    ),
    "config missing x evaluate": Case(
        removed(CONFIG), "evaluate", 2,
        ("config.json is missing", "or evaluate on labelled images"),
    ),
    "config missing x resume": Case(
        removed(CONFIG), "resume", 2, ("config.json is missing", "which --resume needs"),
    ),
    "config garbled x compare": Case(
        truncated(CONFIG), "compare", 2, ("config.json is not valid JSON", RESTORE_CONFIG),
    ),
    "config garbled x resume": Case(
        truncated(CONFIG), "resume", 2, ("config.json is not valid JSON", RESTORE_CONFIG),
    ),
    "config garbled x predict": Case(
        truncated(CONFIG), "predict", 0,
        ("warning:", "config.json is not valid JSON", "batches hold 32 images"),
    ),
    # metrics.json: compare needs it; the model and the checkpoints do without it.
    "metrics garbled x compare": Case(
        truncated(METRICS), "compare", 2,
        ("metrics.json is not valid JSON", "restore metrics.json from a copy"),
    ),
    "metrics missing x compare": Case(
        removed(METRICS), "compare", 2,
        ("metrics.json is missing, though the run saved its model",),
    ),
    "metrics garbled x resume": Case(
        truncated(METRICS), "resume", 0,
        ("warning:", "metrics.json is not valid JSON", "its history is read from epoch-0003"),
        resumed_from(3, trains=[]),
    ),
    # Checkpoints: only --resume reads them.
    "newest checkpoint truncated x resume": Case(
        truncated(checkpoint(3, "model.weights.h5")), "resume", 0,
        ("warning:", "epoch-0003 is damaged: model.weights.h5 is truncated (",
         "Resuming from the older epoch-0002 instead, so epoch 3 runs again"),
        resumed_from(2, trains=[3]),
    ),
    "every checkpoint damaged x resume": Case(
        every_checkpoint_truncated, "resume", 2,
        ("cannot be resumed: every checkpoint in", "epoch-0003: optimizer.npz is truncated",
         "epoch-0002: optimizer.npz is truncated", "or train it again from the first epoch: "
         "zoo run shapes small_cnn gap_sigmoid"),
    ),
    "checkpoints missing x resume": Case(
        removed(file("checkpoints")), "resume", 2,
        ("cannot be resumed: it recorded 3 epochs but", "holds no checkpoint"),
    ),
    "checkpoint of another model x resume": Case(
        other_filters, "resume", 2,
        ("epoch-0003 does not fit the model built now", "variable.shape=(3, 3, 3, 16)",
         "reinstall the plugin versions the run used"),
        lambda run, result: assert_short(result.stderr),
    ),
    # best/: a resume keeps the best of the epochs whose weights it still has.
    "best weights truncated x resume": Case(
        truncated(best_weights), "resume", 0,
        ("warning:", "model.weights.h5 is truncated", "The best epoch so far cannot be "
         "restored: the run keeps the best of epoch 3 (its checkpoint) and the epochs after it"),
        kept_since(3),
    ),
}  # fmt: skip


def command_line(command: str, run: Path, folder: Path) -> list[str]:
    if command == "predict":
        Image.new("RGB", (40, 40)).save(folder / "black.png")
        return ["predict", str(run), str(folder / "black.png")]
    return {
        "compare": ["compare", str(run), "--figure", str(folder / "figure.png")],
        "export": ["export", str(run), "--output", str(folder / "exported.keras")],
        "evaluate": ["evaluate", str(run)],
        "resume": ["run", "--resume", str(run), "--json"],
    }[command]


@pytest.mark.parametrize("name", CASES)
def test_damage_is_named_with_what_to_do(trained: dict[str, Path], isolated: Path, name: str):
    case = CASES[name]
    run = isolated / "run"
    shutil.copytree(trained["interrupted" if case.command == "resume" else "completed"], run)
    case.damage(run)

    result = run_zoo(*command_line(case.command, run, isolated), cwd=isolated)

    message = " ".join(result.stderr.split())
    assert result.exit_code == case.exit_code, result.stderr
    assert "Traceback" not in message
    assert library_noise(result.stderr) == []
    for phrase in case.says:
        assert phrase in message
    if case.exit_code == 2:
        assert "error: " in message and "fix: " in message
    if name.startswith("model") and case.exit_code == 2:
        assert "plugin" not in message  # never the advice for a missing plugin
    if case.then is not None:
        case.then(run, result)


@pytest.mark.parametrize(
    ("damage", "note"),
    [
        (truncated(LATEST), "latest.json is not valid JSON (line "),
        (removed(LATEST), "latest.json is missing; zoo finds checkpoints by their folders"),
        (removed(METRICS), "metrics.json is missing. It is written anew (its history is read "
                           "from epoch-0003); the record of earlier sessions"),
    ],
    ids=["latest.json garbled", "latest.json missing", "metrics.json missing"],
)  # fmt: skip
def test_a_resume_notes_what_it_does_without(trained, isolated: Path, damage, note: str):
    run = isolated / "run"
    shutil.copytree(trained["interrupted"], run)
    damage(run)

    reopened = reopen(run, RunConfig.from_dict(json.loads((run / "config.json").read_text())))

    assert reopened.checkpoint is not None and reopened.checkpoint.epoch == 3
    [warning] = reopened.warnings
    assert note in warning.message
