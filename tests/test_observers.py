"""Run observers: a plugin's listeners, named with --track, told a run's events in order,
and kept apart from it when they break.

Each test runs ``zoo`` in a subprocess, as a user does, with the guide's observer
(docs/plugins.md's ``epoch_log.py``) or small ones written here.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from helpers import run_zoo, write

import zoo
import zoo.testing
from zoo.plugins import LoadOptions, load_registry

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
EPOCH_LOG = re.search(r"```python\n(# epoch_log\.py\n.*?)```", GUIDE, re.DOTALL)
TINY = ("--set", "dataset.num_images=40", "--image-size", "24", "--batch-size", "8")
RUN = ("run", "shapes", "small_cnn", "gap_sigmoid", *TINY)

#: Observers that break, and one that writes down what it is told, in order.
WATCHERS = """
import json

import zoo


class Events(zoo.Callback):
    def __init__(self, params, run):
        self.seen = []
        self.output = run.output

    def on_placement(self, devices, strategy, precision):
        self.seen.append("placement")

    def on_model_built(self, name, rows, counts):
        self.seen.append("model")

    def on_data_loaded(self, dataset, splits):
        self.seen.append("data")

    def on_run_begin(self, start):
        self.run_dir = start.run_dir
        self.seen.append(f"begin resumed_from={start.resumed_from}")

    def on_epoch_end(self, epoch):
        saved = json.loads((self.run_dir / "metrics.json").read_text())["history"]
        self.seen.append(f"epoch {epoch.epoch} {epoch.stage} saved={len(saved)}")

    def should_stop(self, stage, logs):
        return "an observer must not stop a run"

    def on_evaluation(self, evaluation):
        self.seen.append(f"evaluation {evaluation.examples}")

    def on_run_end(self, end):
        self.seen.append(f"end {end.status} kept={end.kept['epoch']}")
        (self.run_dir / "seen.json").write_text(json.dumps(self.seen))


class Raises(zoo.Callback):
    def __init__(self, params, run):
        pass

    def on_epoch_end(self, epoch):
        raise RuntimeError("the dashboard is down")


def broken_builder(params, run):
    raise KeyError("token")


def refusing_builder(params, run):
    raise zoo.ZooError(
        "the watchers observer needs a token.", fix="set WATCHERS_TOKEN", got=None
    )


@zoo.hookimpl
def register_observers(register):
    register(zoo.Observer(name="events", description="Writes what it is told", build=Events))
    register(zoo.Observer(name="raises", description="Raises in each epoch", build=Raises))
    register(zoo.Observer(name="unbuilt", description="Builder fails", build=broken_builder))
    register(zoo.Observer(name="refuses", description="Asks for a token", build=refusing_builder))
"""


@pytest.fixture
def plugins(isolated: Path) -> Path:
    """The guide's epoch_log.py and watchers.py, loaded from ./registry.toml."""
    assert EPOCH_LOG, "docs/plugins.md has no # epoch_log.py example"
    write(isolated / "epoch_log.py", EPOCH_LOG.group(1))
    write(isolated / "watchers.py", WATCHERS)
    write(isolated / "registry.toml", '[plugins]\nload = ["epoch_log.py", "watchers.py"]\n')
    return isolated


def only_run(output: Path) -> Path:
    [run_dir] = [p for p in output.iterdir() if p.is_dir()]
    return run_dir


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))


def test_the_guides_observer_logs_every_epoch_and_says_so_in_metrics_json(plugins: Path):
    result = run_zoo(*RUN, "--epochs", "2", "--track", "epoch_log")

    assert result.exit_code == 0, result.stderr
    run_dir = only_run(plugins / "runs")
    rows = list(csv.DictReader((run_dir / "epochs.csv").open(encoding="utf-8")))
    assert [(r["epoch"], r["stage"]) for r in rows] == [("1", "head"), ("2", "head")]
    assert float(rows[1]["val_loss"]) == metrics(run_dir)["history"][1]["val_loss"]
    assert metrics(run_dir)["tracking"] == {"epoch_log": {"file": "epochs.csv"}}


def test_an_observer_is_told_every_event_in_order_after_zoos_callbacks_saved_it(plugins: Path):
    result = run_zoo(*RUN, "--epochs", "2", "--track", "events")

    assert result.exit_code == 0, result.stderr
    run_dir = only_run(plugins / "runs")
    seen = json.loads((run_dir / "seen.json").read_text())
    test_examples = metrics(run_dir)["evaluation"]["examples"]
    assert seen == [
        "placement",
        "model",
        "data",
        "begin resumed_from=None",
        "epoch 1 head saved=1",  # metrics.json held the epoch when the observer heard of it
        "epoch 2 head saved=2",
        f"evaluation {test_examples}",
        f"end completed kept={metrics(run_dir)['kept']['epoch']}",
    ]
    # Its should_stop was never asked: both epochs ran.
    assert len(metrics(run_dir)["history"]) == 2


def test_a_resumed_run_tells_its_observers_again_and_track_can_change_them(plugins: Path):
    interrupted = run_zoo(
        *RUN, "--epochs", "3", "--track", "events,epoch_log",
        env={"ZOO_TEST_SIGINT": "epoch.begin@2"},
    )  # fmt: skip
    assert interrupted.exit_code != 0
    run_dir = only_run(plugins / "runs")
    assert len(list(csv.DictReader((run_dir / "epochs.csv").open()))) == 1

    resumed = run_zoo("run", "--resume", str(run_dir), "--track", "events")

    assert resumed.exit_code == 0, resumed.stderr
    seen = json.loads((run_dir / "seen.json").read_text())
    assert seen[3:6] == ["begin resumed_from=1", "epoch 2 head saved=2", "epoch 3 head saved=3"]
    # epoch_log was left out of the resume: its file still has the first epoch alone.
    assert len(list(csv.DictReader((run_dir / "epochs.csv").open()))) == 1
    assert json.loads((run_dir / "config.json").read_text())["track"] == "events,epoch_log"


def test_a_resume_whose_observer_is_gone_says_how_to_go_on_without_it(plugins: Path):
    interrupted = run_zoo(
        *RUN, "--epochs", "2", "--track", "epoch_log", env={"ZOO_TEST_SIGINT": "epoch.begin@2"}
    )
    assert interrupted.exit_code != 0
    run_dir = only_run(plugins / "runs")
    write(plugins / "registry.toml", '[plugins]\nload = ["watchers.py"]\n')  # epoch_log gone

    refused = run_zoo("run", "--resume", str(run_dir))

    assert refused.exit_code == 2
    assert "config.json tracks the run with 'epoch_log'" in refused.stderr
    assert "--track ''" in refused.stderr
    assert "Traceback" not in refused.stderr
    resumed = run_zoo("run", "--resume", str(run_dir), "--track", "")
    assert resumed.exit_code == 0, resumed.stderr
    assert metrics(run_dir)["status"] == "completed"


@pytest.mark.parametrize(
    ("observer", "why"),
    [
        ("raises", "raised RuntimeError: the dashboard is down"),
        ("unbuilt", "could not be built: KeyError: 'token'"),
    ],
)
def test_an_observer_that_raises_is_reported_once_and_the_run_goes_on(
    plugins: Path, observer: str, why: str
):
    result = run_zoo(*RUN, "--epochs", "2", "--track", f"{observer},epoch_log")

    assert result.exit_code == 0, result.stderr
    run_dir = only_run(plugins / "runs")
    assert (run_dir / "model.keras").is_file()
    assert result.stderr.count(f"observer '{observer}' from plugin 'watchers'") == 1
    assert why in result.stderr
    [warning] = [w for w in metrics(run_dir)["warnings"] if w["code"] == "observer_failed"]
    assert why in warning["message"] and "the run goes on without it" in warning["message"]
    # The other observer heard every epoch.
    assert len(list(csv.DictReader((run_dir / "epochs.csv").open()))) == 2


def test_an_observers_user_error_stops_the_run_before_it_starts(plugins: Path):
    result = run_zoo(*RUN, "--epochs", "1", "--track", "refuses")

    assert result.exit_code == 2
    assert "the watchers observer needs a token" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((plugins / "runs").glob("*/metrics.json"))


def test_an_unknown_observer_is_named_with_the_closest(plugins: Path):
    result = run_zoo(*RUN, "--track", "epoch_lgo")

    assert result.exit_code == 2
    assert "there is no observer named 'epoch_lgo'" in result.stderr
    assert "epoch_log" in result.stderr


def test_track_in_registry_toml_and_dry_runs_build_no_observer(plugins: Path):
    write(
        plugins / "registry.toml",
        '[plugins]\nload = ["epoch_log.py"]\n\n[run]\ntrack = "epoch_log"\n\n'
        '[components.observer.epoch_log]\ndefaults = { path = "log.csv" }\n',
    )

    dry = run_zoo(*RUN, "--dry-run")
    trained = run_zoo(*RUN, "--epochs", "1")

    assert dry.exit_code == 0 and trained.exit_code == 0, dry.stderr + trained.stderr
    run_dir = only_run(plugins / "runs")
    assert (run_dir / "log.csv").is_file()
    assert json.loads((run_dir / "config.json").read_text())["track"] == "epoch_log"


def test_zoo_list_observers_shows_the_builtin_and_the_plugins(plugins: Path):
    result = run_zoo("list", "observers", "--json")

    assert result.exit_code == 0, result.stderr
    listed = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert {"mlflow", "epoch_log", "events", "raises"} <= set(listed)
    assert listed["mlflow"]["plugin"] == "mlflow_tracking"
    assert [p["default"] for p in listed["epoch_log"]["params"]] == ["epochs.csv"]


def test_check_plugin_reports_an_observer_that_raises(plugins: Path):
    with pytest.raises(zoo.testing.ContractError) as raised:
        zoo.testing.check_plugin("watchers")

    problems = "\n".join(map(str, raised.value.report.problems))
    assert "observer watchers:raises: events: " in problems
    assert "observer watchers:unbuilt: events: " in problems
    assert "observer watchers:events" not in problems


def test_hook_register_observers():
    observer = zoo.Observer(name="hooked", description="o", build=print)

    class Hooked:
        @staticmethod
        @zoo.hookimpl
        def register_observers(register):
            register(observer)

    registry = load_registry(LoadOptions(builtins_only=True, extra=[Hooked]))

    entry = registry.get("observer", "hooked")
    assert (entry.kind, entry.qualified_name, entry.component) == (
        "observer",
        "Hooked:hooked",
        observer,
    )
    assert entry.plugin.components == ["observer:hooked"]


@pytest.mark.parametrize(
    ("chief", "dry_run", "find_lr"),
    [(True, False, False), (False, False, False), (True, True, False), (True, False, True)],
)
def test_only_the_chief_builds_observers_and_a_dry_run_or_find_lr_builds_none(
    chief, dry_run, find_lr, plugins
):
    from types import SimpleNamespace

    from zoo.runconfig import resolve_run
    from zoo.train.protocol import _observers

    registry = load_registry()
    names = ["shapes", "small_cnn", "gap_sigmoid"]
    resolved = resolve_run(registry, names, settings={"track": "epoch_log"})
    run = SimpleNamespace(
        placement=SimpleNamespace(is_chief=chief),
        dry_run=dry_run,
        find_lr=find_lr,
        reopened=None,
        resolved=resolved,
        output=plugins / "runs",
    )

    built = _observers(run)

    trains = chief and not dry_run and not find_lr
    assert [o.name for o in built] == (["epoch_log"] if trains else [])
