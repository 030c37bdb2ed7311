"""``zoo tune`` as users run it: studies in subprocesses, read back by later processes.

One study answers the issue's test: on ``shapes`` (ring vs diamond), the pretrained
``shapes_cnn`` beside three backbones with random weights (frozen), the search ranks
the pretrained one first, repeats the leaders with other seeds, and its recipe
reproduces the winner in a new process. Smaller studies are killed with SIGKILL and
resumed, shared by two processes at once, and damaged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import run_zoo, write, zoo_executable

optuna = pytest.importorskip("optuna")

#: Random weights for three backbones, frozen: only shapes_cnn brings what it learnt.
RANDOM_BACKBONES = """
[components.backbone.small_cnn]
defaults = { trainable = false }
[components.backbone.mobilenet_v2]
defaults = { weights = "none" }
[components.backbone.efficientnet_b0]
defaults = { weights = "none" }
"""
FOUR = "shapes_cnn,small_cnn,mobilenet_v2,efficientnet_b0"
RINGS = ["--set", "dataset.classes=ring,diamond", "--image-size", "64", "--epochs", "3"]
#: A small study: two backbones, tiny images, a few seconds a trial.
SMALL = [
    "shapes", "--backbones", "shapes_cnn,small_cnn", "--heads", "gap_softmax",
    "--epochs", "2", "--image-size", "32", "--batch-size", "16",
    "--set", "dataset.num_images=120", "--set", "dataset.min_size=24",
    "--set", "dataset.max_size=40", "--search", "learning_rate,dropout", "--output", "out",
]  # fmt: skip


def env_for(folder: Path) -> dict[str, str | None]:
    return {"ZOO_CACHE_DIR": str(folder / "cache"), "ZOO_REGISTRY": None}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The issue's study, run once in a subprocess: 4 backbones, 8 trials, 2 repeats."""
    folder = tmp_path_factory.mktemp("study")
    write(folder / "registry.toml", RANDOM_BACKBONES)
    args = ["tune", "shapes", "--backbones", FOUR, "--heads", "gap_softmax", "--trials", "8"]
    args += [*RINGS, "--set", "dataset.num_images=400", "--repeats", "2"]
    args += ["--search", "learning_rate,dropout,label_smoothing", "--json"]
    result = run_zoo(*args, cwd=folder, env=env_for(folder))
    assert result.exit_code == 0, result.stderr
    return {"folder": folder, "args": args, "summary": result.json(), "stderr": result.stderr}


def test_the_pretrained_backbone_ranks_first_among_four(study: dict):
    summary = study["summary"]
    rows = summary["rows"]

    assert {row["backbone"] for row in rows} == set(FOUR.split(","))  # each had a trial
    assert len(rows) == 8
    first = next(row for row in rows if row["rank"] == 1)
    assert first["backbone"] == "shapes_cnn"
    assert len(first["repeats"]) == 3 and first["spread"] is not None  # its seed and 2 more
    assert summary["chosen"] == first["trial"]
    assert "trial 0 (1 of 8):" in study["stderr"] and "repeat of trial" in study["stderr"]


def test_the_test_split_is_scored_once_for_the_chosen_trial_alone(study: dict):
    folder, summary = study["folder"], study["summary"]

    trial_runs = sorted((folder / "runs/tune/shapes/runs").iterdir())
    assert len(trial_runs) == 8
    for run_dir in trial_runs:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["status"] == "completed" and not metrics["test"]
        assert not (run_dir / "model.keras").exists() and not (run_dir / "checkpoints").exists()
    final = folder / summary["final_run"]
    assert final.parent == folder / "runs/tune/shapes/winner"
    assert (final / "model.keras").is_file()
    assert summary["test"]["accuracy"] == pytest.approx(
        json.loads((final / "metrics.json").read_text())["test"]["accuracy"]
    )


def test_leaderboard_figure_and_recipe_are_written(study: dict):
    study_folder = study["folder"] / "runs/tune/shapes"
    board = json.loads((study_folder / "leaderboard.json").read_text())

    assert [row["trial"] for row in board["rows"]] == [r["trial"] for r in study["summary"]["rows"]]
    assert any(row["pareto"] for row in board["rows"])
    for row in board["rows"]:
        assert row["latency_ms"] > 0 and row["size_mb"] > 0 and row["seconds"] > 0
    assert (study_folder / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    recipe = (study_folder / "recipe.toml").read_text()
    assert "[recipes.tuned_shapes]\n" in recipe and 'backbone = "shapes_cnn"' in recipe


def test_the_recipe_reproduces_the_winner_in_a_new_process(study: dict):
    folder, summary = study["folder"], study["summary"]
    recipe = folder / "runs/tune/shapes/recipe.toml"

    result = run_zoo(
        "run",
        "--recipe",
        str(recipe),
        "--output",
        "again",
        "--json",
        cwd=folder,
        env=env_for(folder),
    )

    assert result.exit_code == 0, result.stderr
    run_dir = Path(folder / result.json()["run_dir"])
    kept = json.loads((run_dir / "metrics.json").read_text())["kept"]["metrics"]["val_accuracy"]
    winner = next(row for row in summary["rows"] if row["rank"] == 1)
    assert min(winner["repeats"]) <= kept <= max(winner["repeats"])
    assert kept == pytest.approx(summary["final_value"], abs=1e-6)


def test_report_and_compare_read_the_study_in_new_processes(study: dict):
    folder, summary = study["folder"], study["summary"]

    report = run_zoo("tune", "--report", "shapes", "--json", cwd=folder, env=env_for(folder))
    compared = run_zoo("compare", "runs/tune/shapes", "--json", cwd=folder, env=env_for(folder))

    assert report.exit_code == 0, report.stderr
    assert [r["trial"] for r in report.json()["rows"]] == [r["trial"] for r in summary["rows"]]
    assert report.json()["chosen"] == summary["chosen"]
    assert compared.exit_code == 0, compared.stderr
    assert len(compared.json()["runs"]) == 9  # 8 trials and the winner's final run


def test_running_a_finished_study_again_trains_nothing(study: dict):
    folder = study["folder"]

    again = run_zoo(*study["args"], cwd=folder, env=env_for(folder))

    assert again.exit_code == 0, again.stderr
    assert again.json()["chosen"] == study["summary"]["chosen"]
    assert "trial " not in again.stderr and "extracting" not in again.stderr
    assert len(list((folder / "runs/tune/shapes/runs").iterdir())) == 8


def test_another_search_under_the_same_study_name_is_refused(study: dict):
    folder = study["folder"]
    args = [a if a != FOUR else "shapes_cnn,small_cnn" for a in study["args"]]

    result = run_zoo(*args, cwd=folder, env=env_for(folder))

    assert result.exit_code == 2
    assert "searches something else" in result.stderr and "--study NAME" in result.stderr


def trials_of(folder: Path, name: str = "shapes") -> list:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = folder / "out/tune" / name / "journal.log"
    if not journal.exists():
        return []
    storage = JournalStorage(JournalFileBackend(str(journal)))
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def start_zoo(folder: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "ZOO_CACHE_DIR": str(folder / "cache")}
    env.pop("ZOO_REGISTRY", None)
    return subprocess.Popen(
        [zoo_executable(), *args], cwd=folder, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_study_killed_with_sigkill_continues_without_repeating_finished_trials(
    isolated: Path,
):
    process = start_zoo(isolated, "tune", *SMALL, "--trials", "6")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        states = [t.state.name for t in trials_of(isolated)]
        if states.count("COMPLETE") + states.count("PRUNED") >= 2 and "RUNNING" in states:
            break
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = {t.number: (t.state.name, t.value) for t in trials_of(isolated)}
    killed = [n for n, (state, _) in before.items() if state == "RUNNING"]

    result = run_zoo("tune", *SMALL, "--trials", "6", "--json")

    assert result.exit_code == 0, result.stderr
    after = trials_of(isolated)
    for trial in after:  # what had finished is as it was, and was not run again
        if trial.number in before and before[trial.number][0] in ("COMPLETE", "PRUNED"):
            assert (trial.state.name, trial.value) == before[trial.number]
    assert killed and all(after[n].state.name == "FAIL" for n in killed)
    retried = [t.user_attrs.get("retry_of") for t in after]
    assert all(n in retried for n in killed)  # queued again, with its settings
    finished = [t for t in after if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 6
    assert result.json()["trials"] == 6


def test_two_processes_tune_one_study_to_its_total(isolated: Path):
    first = start_zoo(isolated, "tune", *SMALL, "--trials", "6")
    second = start_zoo(isolated, "tune", *SMALL, "--trials", "6")
    outputs = [p.communicate(timeout=600)[1] for p in (first, second)]

    assert [first.returncode, second.returncode] == [0, 0], outputs
    trials = trials_of(isolated)
    assert len(trials) == 6 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert {t.user_attrs["process"]["pid"] for t in trials} == {first.pid, second.pid}
    run_dirs = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(run_dirs)) == 6
    assert (isolated / "out/tune/shapes/recipe.toml").is_file()
    assert len(list((isolated / "out/tune/shapes/winner").iterdir())) == 1  # ended once


def test_a_damaged_journal_is_named_not_a_traceback(isolated: Path):
    result = run_zoo("tune", *SMALL, "--trials", "1")
    assert result.exit_code == 0, result.stderr
    journal = isolated / "out/tune/shapes/journal.log"
    journal.write_bytes(os.urandom(4096))

    report = run_zoo("tune", "--report", "shapes", "--output", "out")
    again = run_zoo("tune", *SMALL, "--trials", "2")

    for damaged in (report, again):
        assert damaged.exit_code == 2
        assert (
            "cannot be read" in damaged.stderr
            and str(Path("out/tune/shapes/journal.log")) in damaged.stderr
        )
        assert "Traceback" not in damaged.stderr


def test_a_journal_lock_left_by_a_killed_process_is_taken_over(isolated: Path):
    result = run_zoo("tune", *SMALL, "--trials", "1")
    assert result.exit_code == 0, result.stderr
    journal = (isolated / "out/tune/shapes/journal.log").resolve()
    lock = journal.with_name("journal.log.lock")  # Optuna's lock, as SIGKILL leaves it
    lock.symlink_to(journal)

    again = run_zoo("tune", *SMALL, "--trials", "2", "--json")

    assert again.exit_code == 0, again.stderr
    assert again.json()["trials"] == 2 and not lock.exists()


def test_fine_tuning_depth_is_searched_when_asked_and_timeout_ends_the_search(isolated: Path):
    asked = ["--fine-tune-depths", "2", "--fine-tune-epochs", "1", "--trials", "50"]

    result = run_zoo("tune", *SMALL, *asked, "--timeout", "10s", "--json")

    assert result.exit_code == 0, result.stderr
    rows = result.json()["rows"]
    assert 2 <= len(rows) < 50  # both backbones' first trials, then the clock
    assert {row["settings"]["fine_tune_layers"] for row in rows} <= {"0", "2"}
    for row in (row for row in rows if row["state"] == "complete"):
        metrics = json.loads((isolated / row["run_dir"] / "metrics.json").read_text())
        stages = {epoch["stage"] for epoch in metrics["history"]}
        assert ("fine_tune" in stages) == (row["settings"]["fine_tune_layers"] == "2")


def test_a_study_in_a_database_given_by_url(isolated: Path):
    url = f"sqlite:///{isolated / 'studies.db'}"

    result = run_zoo("tune", *SMALL, "--trials", "2", "--storage", url, "--json")
    report = run_zoo("tune", "--report", "shapes", "--storage", url, "--output", "out", "--json")

    assert result.exit_code == 0, result.stderr
    assert (isolated / "studies.db").is_file()
    assert not (isolated / "out/tune/shapes/journal.log").exists()
    assert report.exit_code == 0, report.stderr
    assert report.json()["chosen"] == result.json()["chosen"]
    assert len(report.json()["rows"]) == 2


def test_trials_leave_no_graph_behind_so_memory_stays_flat(isolated: Path):
    import gc

    import zoo
    from zoo.train.engine import EngineOptions
    from zoo.tune import search, space, trial

    graphs: list[int] = []

    class Counting(search.Shown):
        def trial_ended(self, number, done, draw, outcome, error) -> None:
            gc.collect()
            graphs.append(sum(type(o).__name__ == "FuncGraph" for o in gc.get_objects()))

    job = search.Tuning(
        registry=zoo.load_registry(),
        dataset="shapes",
        space=space.Space(("small_cnn",), ("gap_softmax",), ("learning_rate",)),
        settings={"epochs": 2, "image_size": 32, "batch_size": 16},
        sets=("dataset.num_images=60", "backbone.trainable=false"),
        folder=isolated / "study",
        name="flat",
        storage=None,
        trials=4,
        timeout=None,
        metric="val_accuracy",
        repeats=0,
        options=EngineOptions(),
    )
    before = trial._custom_gradients()

    search.tune(job, Counting())

    assert len(graphs) == 4 and graphs[-1] <= graphs[0]  # no trial's step graph kept
    assert trial._custom_gradients() == before  # TensorFlow's registry holds none of theirs
