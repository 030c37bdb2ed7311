"""The parts of ``zoo tune``, each on its own: what a trial draws, the leaderboard, the
winner's recipe file, a study's storage and the trials a killed process leaves, and the
command line's refusals. Two tiny real runs (a few seconds each) check ``zoo run
--no-test`` and ``zoo compare`` on a study's folder.

The whole study, end to end, is in ``test_tune.py``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import TINY_RUN, Result, run_zoo, write
from PIL import Image

import zoo
from zoo.errors import ZooError

INSTALL_HINT = "pip install 'zoo[tune]'"
RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN]


@pytest.fixture
def optuna() -> Any:
    """Optuna (zoo's [tune] extra), quiet, as zoo tune imports it."""
    pytest.importorskip("optuna", reason="needs optuna: pip install 'zoo[tune]'")
    from zoo.tune.studies import import_optuna

    return import_optuna()


# --- What a trial draws ------------------------------------------------------------------

EVERYTHING = {
    "backbone": "small_cnn",
    "head": "gap_sigmoid",
    "learning_rate": 0.003,
    "label_smoothing": 0.1,
    "weight_decay": 0.01,
    "class_weight": "balanced",
    "lr_schedule": "cosine",
    "augment_views": 0,
    "dropout": 0.25,
    "fine_tune_layers": "0",
}


def space(**fields: Any) -> Any:
    from zoo.tune.space import Space

    fields.setdefault("with_dropout", frozenset({"gap_sigmoid"}))
    return Space(("small_cnn", "shapes_cnn"), ("gap_sigmoid", "gap_softmax"), **fields)


def test_a_draw_gives_settings_as_zoo_run_takes_them(optuna):
    from zoo.tune.space import Draw

    drawn = space(fine_tune_depths=("2", "8")).draw(optuna.trial.FixedTrial(EVERYTHING))

    assert drawn == Draw(
        backbone="small_cnn",
        head="gap_sigmoid",
        settings={
            "learning_rate": 0.003,
            "label_smoothing": 0.1,
            "optimizer": "adamw",  # weight decay is AdamW's
            "weight_decay": 0.01,
            "class_weight": "balanced",
            "lr_schedule": "cosine",
            "augment": False,  # no augmented views: no augmentation
            "augment_views": 1,
            "fine_tune_layers": "",  # depth "0": no fine-tuning stage at all
            "fine_tune_epochs": 0,
        },
        sets=("head.dropout=0.25",),
    )


def test_augmented_views_and_a_fine_tuning_depth(optuna):
    params = {**EVERYTHING, "augment_views": 4, "fine_tune_layers": "8"}

    drawn = space(fine_tune_depths=("2", "8")).draw(optuna.trial.FixedTrial(params))

    assert drawn.settings["augment"] is True
    assert drawn.settings["augment_views"] == 4
    assert drawn.settings["fine_tune_layers"] == "8"


def test_dropout_is_drawn_only_for_heads_that_have_one(optuna):
    params = {**EVERYTHING, "head": "gap_softmax"}

    drawn = space().draw(optuna.trial.FixedTrial(params))

    assert drawn.head == "gap_softmax"
    assert drawn.sets == ()


def test_only_the_searched_settings_are_drawn(optuna):
    trial = optuna.trial.FixedTrial(
        {"backbone": "shapes_cnn", "head": "gap_sigmoid", "dropout": 0.1}
    )

    drawn = space(searched=("dropout",)).draw(trial)

    assert drawn.settings == {}  # no fine-tuning depths: fine-tuning is not searched
    assert drawn.sets == ("head.dropout=0.1",)


def test_searched_settings_leave_out_those_the_user_fixed():
    from zoo.tune.space import SEARCHABLE, searched_settings

    assert searched_settings(None, []) == tuple(SEARCHABLE)
    assert searched_settings(None, ["learning_rate", "dropout"]) == tuple(
        name for name in SEARCHABLE if name not in ("learning_rate", "dropout")
    )
    assert searched_settings(" dropout, learning_rate,", ["learning_rate"]) == ("dropout",)


def test_an_unknown_searched_setting_names_the_closest():
    from zoo.tune.space import searched_settings

    with pytest.raises(ZooError) as raised:
        searched_settings("learning_rat,dropout", [])

    assert raised.value.got == "learning_rat"
    assert "did you mean 'learning_rate'?" in str(raised.value.fix)


# --- The leaderboard ---------------------------------------------------------------------


def row(trial: int, state: str, value: float | None, **fields: Any) -> Any:
    from zoo.tune.leaderboard import Row

    return Row(trial, state, "small_cnn", "gap_sigmoid", {}, value, **fields)


def test_completed_trials_rank_best_first_then_pruned_then_failed():
    from zoo.tune.leaderboard import ranked

    board = ranked(
        [
            row(0, "fail", None, note="out of memory"),
            row(1, "pruned", 0.6),
            row(2, "complete", 0.7),
            row(3, "pruned", 0.65),
            row(4, "complete", 0.9),
            row(5, "complete", 0.8),
        ],
        higher=True,
    )

    assert [(r.trial, r.rank) for r in board] == [
        (4, 1),
        (5, 2),
        (2, 3),
        (3, None),
        (1, None),
        (0, None),
    ]


def test_a_loss_ranks_lowest_first():
    from zoo.tune.leaderboard import ranked

    board = ranked(
        [row(0, "complete", 0.4), row(1, "complete", 0.2), row(2, "complete", 0.3)], False
    )

    assert [r.trial for r in board] == [1, 2, 0]
    assert [r.rank for r in board] == [1, 2, 3]


def test_repeats_rank_a_trial_by_its_mean_over_seeds():
    from zoo.tune.leaderboard import ranked

    lucky = row(0, "complete", 0.9, repeats=[0.9, 0.5, 0.7])
    steady = row(1, "complete", 0.8, repeats=[0.8, 0.8])
    once = row(2, "complete", 0.75)

    board = ranked([lucky, once, steady], higher=True)

    assert [r.trial for r in board] == [1, 2, 0]
    assert lucky.score == pytest.approx(0.7)
    assert lucky.spread == pytest.approx(0.2)
    assert steady.spread == 0.0
    assert (once.score, once.spread) == (0.75, None)
    assert row(3, "complete", 0.6, repeats=[0.6]).spread is None  # one seed: no spread


def test_the_pareto_front_leaves_out_slower_and_worse_trials():
    from zoo.tune.leaderboard import pareto

    fast = row(0, "complete", 0.8, latency_ms=5.0)
    accurate = row(1, "complete", 0.9, latency_ms=10.0)
    beaten = row(2, "complete", 0.7, latency_ms=20.0)
    as_fast_but_worse = row(3, "complete", 0.75, latency_ms=5.0)
    as_good_but_slower = row(4, "complete", 0.9, latency_ms=12.0)
    twin = row(5, "complete", 0.9, latency_ms=10.0)  # ties with accurate: neither beats
    untimed = row(6, "complete", 0.99)

    front = pareto(
        [fast, accurate, beaten, as_fast_but_worse, as_good_but_slower, twin, untimed], True
    )

    assert [r.trial for r in front] == [0, 1, 5]


def test_the_pareto_front_of_a_loss_keeps_the_lowest():
    from zoo.tune.leaderboard import pareto

    low = row(0, "complete", 0.2, latency_ms=5.0)
    high = row(1, "complete", 0.3, latency_ms=5.0)

    assert pareto([low, high], higher=False) == [low]


def test_only_completed_trials_are_marked_on_the_front():
    from zoo.tune.leaderboard import ranked

    pruned = row(0, "pruned", 0.99, latency_ms=1.0)
    complete = row(1, "complete", 0.8, latency_ms=5.0)

    ranked([pruned, complete], higher=True)

    assert (pruned.pareto, complete.pareto) == (False, True)


def test_the_leaderboard_is_written_as_json_and_a_figure(tmp_path: Path):
    from zoo.tune import leaderboard

    board = leaderboard.ranked(
        [
            row(0, "complete", 0.9, latency_ms=10.0, repeats=[0.9, 0.8]),
            row(1, "complete", 0.8, latency_ms=2.0),
            row(2, "complete", 0.6, latency_ms=30.0),
            row(3, "fail", None, note="boom"),
        ],
        higher=True,
    )

    figure = leaderboard.write(tmp_path, board, {"study": "shapes"}, "val_accuracy")

    assert figure == tmp_path / "leaderboard.png"
    with Image.open(figure) as image:
        assert image.format == "PNG"
        assert image.size == (750, 500)
    data = json.loads((tmp_path / "leaderboard.json").read_text())
    assert data["study"] == "shapes"
    shown = [(r["trial"], r["rank"], r["pareto"], r["score"]) for r in data["rows"]]
    assert shown == [
        (0, 1, True, pytest.approx(0.85)),
        (1, 2, True, 0.8),
        (2, 3, False, 0.6),
        (3, None, False, None),
    ]
    assert data["rows"][0]["spread"] == pytest.approx(0.0707, abs=1e-4)
    assert data["rows"][3]["note"] == "boom"


# --- The winner's recipe -----------------------------------------------------------------


def test_a_recipe_file_resolves_to_the_run_it_was_written_for(tmp_path: Path):
    from zoo.config.registry_file import read_recipe_file
    from zoo.tune import recipe

    registry = zoo.load_registry()
    settings = {
        "epochs": 2,
        "learning_rate": 0.0031,
        "optimizer": "adamw",
        "weight_decay": 1e-4,
        "lr_schedule": "cosine",
        "label_smoothing": 0.05,
        "augment": True,
        "augment_views": 2,
        "fine_tune_epochs": 1,
        "fine_tune_layers": "2",
        "seed": 7,
    }
    sets = ["head.dropout=0.2", "dataset.num_images=40", "backbone.filters=8,16"]
    winner = zoo.resolve_run(
        registry, ["shapes", "small_cnn", "gap_sigmoid"], settings=settings, sets=sets
    )

    path = recipe.write(tmp_path, "shapes.v2", winner.config, "trial 3 of 8\nreproduce it")

    found = read_recipe_file(path)
    assert found.name == "tuned_shapes_v2"
    assert (found.dataset, found.backbone, found.head) == ("shapes", "small_cnn", "gap_sigmoid")
    assert "track" not in found.settings  # how a run is watched, not what it trains
    assert path.read_text().startswith("# trial 3 of 8\n# reproduce it\n")
    again = zoo.resolve_run(registry, recipe=str(path)).config
    assert again.recipe == "tuned_shapes_v2"

    def trained(config: Any) -> dict[str, Any]:
        return {k: v for k, v in config.to_dict().items() if k not in ("recipe", "track")}

    assert trained(again) == trained(winner.config)


# --- zoo run --recipe FILE.toml refuses what is not one recipe ---------------------------

RECIPE = """
[recipes.{name}]
dataset = "shapes"
backbone = "small_cnn"
head = "gap_sigmoid"
"""


@pytest.mark.parametrize(
    ("extra", "got"),
    [
        ('[plugins]\nload = ["evil.py"]\n', "[plugins]"),
        ("[run]\nepochs = 1\n", "[run]"),
        (RECIPE.format(name="second"), "2 recipes"),
    ],
    ids=["plugins", "run-defaults", "two-recipes"],
)
def test_run_refuses_a_recipe_file_that_is_not_one_recipe(isolated: Path, extra: str, got: str):
    write(
        isolated / "evil.py",
        f"from pathlib import Path\nPath({str(isolated / 'loaded')!r}).touch()\n",
    )
    write(isolated / "recipe.toml", RECIPE.format(name="first") + extra)

    result = run_zoo("run", "--recipe", "recipe.toml")

    assert result.exit_code == 2, result.stderr
    assert "a recipe file holds one [recipes.NAME] table and nothing else" in result.stderr
    assert f"got: '{got}'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (isolated / "loaded").exists()  # a recipe file never loads code
    assert not (isolated / "runs").exists()


def test_run_refuses_a_missing_recipe_file(isolated: Path):
    result = run_zoo("run", "--recipe", "nosuch.toml")

    assert result.exit_code == 2
    assert "there is no recipe file nosuch.toml" in result.stderr
    assert "check the path given with --recipe" in result.stderr
    assert "Traceback" not in result.stderr


# --- zoo run --no-test -------------------------------------------------------------------


def test_run_without_the_test_split_still_writes_its_model(isolated: Path):
    result = run_zoo(*RUN, "--no-test", "--json")

    assert result.exit_code == 0, result.stderr
    printed = result.json()
    assert isinstance(printed, dict)
    assert printed["test"] == {}
    assert printed["history"][-1]["val_accuracy"] is not None  # validation is still scored
    run_dir = Path(printed["run_dir"])
    assert json.loads((run_dir / "metrics.json").read_text())["test"] == {}
    assert (run_dir / "model.keras").is_file()


# --- A study's storage -------------------------------------------------------------------


def finished_process() -> dict[str, Any]:
    """How a trial records a process of this host that has since ended."""
    code = (
        "import json; from zoo.tune.studies import this_process; print(json.dumps(this_process()))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def new_study(optuna: Any, folder: Path) -> Any:
    from zoo.tune import studies

    return optuna.create_study(
        study_name="s", storage=studies.storage(folder, None), direction="maximize"
    )


def started(study: Any, learning_rate: float, process: dict[str, Any] | None = None) -> Any:
    """A trial asked of ``study`` that drew ``learning_rate``, run by ``process``."""
    trial = study.ask()
    trial.suggest_float("learning_rate", learning_rate, learning_rate, log=True)
    if process is not None:
        trial.set_user_attr("process", process)
    return trial


def test_a_trial_left_running_by_a_dead_process_is_failed_and_queued_once(optuna, tmp_path: Path):
    from optuna.trial import TrialState

    from zoo.tune import studies

    study = new_study(optuna, tmp_path / "study")
    killed = started(study, 0.001, finished_process())
    training = started(study, 0.002, studies.this_process())
    broken = started(study, 0.003)
    broken.set_user_attr("error", "the head does not fit the data")
    study.tell(broken, state=TrialState.FAIL)
    interrupted = started(study, 0.004)
    study.tell(interrupted, state=TrialState.FAIL)  # Ctrl-C: failed without an error

    assert studies.requeue_abandoned(study) == [killed.number, interrupted.number]
    assert studies.requeue_abandoned(study) == []  # queued once, however often joined

    states = {t.number: t.state for t in study.get_trials()}
    assert states[killed.number] == TrialState.FAIL
    assert states[training.number] == TrialState.RUNNING  # its process is alive
    retried = study.ask()
    assert retried.user_attrs == {"retry_of": killed.number}
    assert retried.suggest_float("learning_rate", 1e-4, 3e-2, log=True) == 0.001


def test_counted_trials_are_those_that_ran_or_run(optuna, tmp_path: Path):
    from optuna.trial import TrialState

    from zoo.tune import studies

    study = new_study(optuna, tmp_path / "study")
    study.tell(started(study, 0.001), 0.8)
    pruned = started(study, 0.002)
    pruned.report(0.5, 1)
    study.tell(pruned, state=TrialState.PRUNED)
    broken = started(study, 0.003)
    broken.set_user_attr("error", "cannot run")
    study.tell(broken, state=TrialState.FAIL)
    study.tell(started(study, 0.004), state=TrialState.FAIL)  # killed: runs again, later
    started(study, 0.005, studies.this_process())
    study.enqueue_trial({"learning_rate": 0.006})  # counts once a process runs it

    assert studies.counted(study) == 4  # completed, pruned, failed with an error, running
    assert studies.running(study) == 1


def test_whether_a_process_is_dead():
    from zoo.tune.studies import is_dead, this_process

    assert is_dead(this_process()) is False
    assert is_dead(finished_process()) is True
    assert is_dead({**this_process(), "started": -1}) is True  # its pid, reused by another
    elsewhere = {**finished_process(), "host": socket.gethostname() + "-elsewhere"}
    assert is_dead(elsewhere) is False  # another host's processes cannot be seen


# --- zoo tune's command line -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("1.5h", 5400), ("20", 20), (" 2d ", 172800)],
)
def test_durations(text: str, seconds: float):
    from zoo.commands.tune import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "-5m", "5x", "m", "1h30m", "1,5h"])
def test_bad_durations_are_refused(text: str):
    from zoo.commands.tune import parse_duration

    with pytest.raises(ZooError) as raised:
        parse_duration(text)

    assert raised.value.got == text


def refused(result: Result) -> str:
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "zoo tune needs a dataset, or --report STUDY."),
        (
            ["--report", "nosuch", "--output", "out"],
            "there is no study 'nosuch' in out/tune/nosuch",
        ),
        (["--report", "../x"], "a study's name is a folder name"),
        (
            ["shapes", "--backbones", "small_cnn", "--study", "../x"],
            "a study's name is a folder name",
        ),
        (["shapes", "--backbones", "small_cnn", "--trials", "0"], "--trials must be 1 or more."),
        (
            ["shapes", "--backbones", "small_cnn", "--timeout", "soon"],
            "--timeout takes a duration.",
        ),
        (
            ["shapes", "--backbones", "small_cnn", "--search", "learning_rat"],
            "did you mean 'learning_rate'?",
        ),
    ],
    ids=["no-dataset", "no-study", "report-path", "study-path", "no-trials", "timeout", "search"],
)
def test_tune_refuses(optuna, isolated: Path, args: list[str], message: str):
    stderr = refused(run_zoo("tune", *args))

    assert message in stderr
    assert not (isolated / "runs").exists() and not (isolated / "out").exists()


def test_tune_without_optuna_says_how_to_install_it(isolated: Path):
    write(isolated / "hidden" / "sitecustomize.py", 'import sys\n\nsys.modules["optuna"] = None\n')
    without = {"PYTHONPATH": str(isolated / "hidden")}
    check = subprocess.run(
        [sys.executable, "-c", "import optuna"], env=without, capture_output=True
    )
    assert check.returncode != 0  # optuna is hidden from that environment

    for args in (["shapes", "--backbones", "small_cnn"], ["--report", "shapes"]):
        stderr = refused(run_zoo("tune", *args, env=without))
        assert "zoo tune needs Optuna, which is not installed." in stderr
        assert f"fix: {INSTALL_HINT}" in stderr
    assert run_zoo("tune", "--help", env=without).exit_code == 0


# --- zoo compare on a study's folder -----------------------------------------------------


def test_compare_takes_a_study_folder_for_its_runs(isolated: Path):
    study = isolated / "runs" / "tune" / "shapes"
    trial = run_zoo(*RUN, "--no-test", "--json", "--output", str(study / "runs"))
    final = run_zoo(*RUN, "--seed", "1", "--json", "--output", str(study / "winner"))
    assert trial.exit_code == 0 and final.exit_code == 0, trial.stderr + final.stderr
    (study / "study.lock").touch()

    result = run_zoo("compare", str(study), "--json", "--sort", "given", "--figure", "study.png")

    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert isinstance(data, dict)
    runs = data["runs"]
    written = [run.json() for run in (trial, final)]
    assert [Path(r["path"]) for r in runs] == [Path(w["run_dir"]) for w in written]
    assert runs[0]["test_accuracy"] is None  # a trial's run is not tested
    assert runs[1]["test_accuracy"] is not None
    assert (isolated / "study.png").is_file()


def test_compare_takes_a_folder_without_a_lock_as_a_run(isolated: Path):
    (isolated / "looks" / "runs").mkdir(parents=True)

    result = run_zoo("compare", "looks", "--json")

    assert result.exit_code == 2
    assert "looks" in result.stderr
