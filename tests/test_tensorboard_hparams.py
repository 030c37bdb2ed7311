"""TensorBoard's HParams dashboard compares runs: each run's ``logs`` is a session with
its settings, its splits' scalars are the session's metrics, and a session says it
succeeded once its run completes (``zoo.train.callbacks.TensorBoard``).

The dashboard is read as ``tensorboard --logdir runs`` serves it: the HParams plugin's
own routes over TensorBoard's event multiplexer, on files written by ``zoo run``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import TINY_RUN, run_zoo

from zoo.train.callbacks import TensorBoard
from zoo.train.durability.interrupts import ENV
from zoo.train.events import RunEnd, RunStart

RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--epochs", "2"]
VALIDATION_ACCURACY = {"group": "validation", "tag": "epoch_accuracy"}
STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:tensorboard.*")


@dataclass
class Dashboard:
    """What the HParams dashboard shows: the hyperparameters and metrics it found, and
    one session group per run (by its trial id, the run directory's name)."""

    hparams: dict[str, dict[str, Any]]
    metrics: list[dict[str, str]]
    groups: dict[str, dict[str, Any]]

    def status(self, run: str) -> str:
        (session,) = self.groups[run]["sessions"]
        return session.get("status", "STATUS_UNKNOWN")

    def metric(self, run: str, name: dict[str, str]) -> dict[str, Any]:
        (found,) = [m for m in self.groups[run]["metricValues"] if m["name"] == name]
        return found


def dashboard(logdir: Path) -> Dashboard:
    """Ask the HParams plugin what it shows for ``logdir``, as the dashboard asks it."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import hparams_plugin
    from werkzeug.test import Client

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    context = base_plugin.TBContext(data_provider=provider, logdir=str(logdir))
    routes = hparams_plugin.HParamsPlugin(context).get_plugin_apps()

    def post(route: str, request: dict[str, Any]) -> dict[str, Any]:
        response = Client(routes[route]).post("/", json=request)
        assert response.status_code == 200, response.text
        return response.json

    experiment = post("/experiment", {})
    groups = post("/session_groups", {"allowedStatuses": STATUSES, "sliceSize": 100})
    return Dashboard(
        hparams={h["name"]: h for h in experiment["hparamInfos"]},
        metrics=[m["name"] for m in experiment["metricInfos"]],
        groups={g["name"]: g for g in groups["sessionGroups"]},
    )


def session_summaries(run_dir: Path) -> list[str]:
    """The HParams summaries in the run's session (``logs`` itself), in the order written."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import metadata

    kinds = {metadata.SESSION_START_INFO_TAG: "start", metadata.SESSION_END_INFO_TAG: "end"}
    found = []
    for path in sorted((run_dir / "logs").glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            found += [kinds[value.tag] for value in event.summary.value if value.tag in kinds]
    return found


def train(cwd: Path, *args: str) -> dict[str, Any]:
    result = run_zoo(*RUN, "--output", "runs", "--json", *args, cwd=cwd)
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_two_runs_are_two_sessions_compared_by_their_settings(isolated: Path):
    rates = {}
    for rate in ("0.01", "0.001"):
        rates[Path(train(isolated, "--learning-rate", rate)["run_dir"]).name] = float(rate)

    shown = dashboard(isolated / "runs")

    learning_rate = shown.hparams["learning_rate"]
    assert learning_rate["differs"]
    assert learning_rate["domainInterval"] == {"minValue": 0.001, "maxValue": 0.01}
    assert shown.hparams["backbone"]["domainDiscrete"] == ["small_cnn"]
    assert shown.hparams["dataset.num_images"]["domainInterval"]["maxValue"] == 40
    assert shown.hparams["augment"]["domainDiscrete"] == [False]
    assert VALIDATION_ACCURACY in shown.metrics
    assert {"group": "train", "tag": "epoch_loss"} in shown.metrics
    assert set(shown.groups) == set(rates)
    for name, rate in rates.items():
        assert shown.groups[name]["hparams"]["learning_rate"] == rate
        assert shown.status(name) == "STATUS_SUCCESS"
        accuracy = shown.metric(name, VALIDATION_ACCURACY)
        assert accuracy["trainingStep"] == 1  # the last epoch's
        last = json.loads((isolated / "runs" / name / "metrics.json").read_text())["history"][-1]
        assert accuracy["value"] == pytest.approx(last["val_accuracy"])


def test_an_interrupted_run_is_one_session_that_succeeds_once_resumed(isolated: Path):
    stopped = run_zoo(*RUN, "--output", "runs", cwd=isolated, env={ENV: "epoch.begin@2"})
    assert stopped.exit_code == 130, stopped.stderr
    (run_dir,) = (isolated / "runs").iterdir()

    before = dashboard(isolated / "runs")
    resumed = run_zoo("run", "--resume", str(run_dir), "--json", cwd=isolated)
    assert resumed.exit_code == 0, resumed.stderr
    after = dashboard(isolated / "runs")

    assert list(before.groups) == list(after.groups) == [run_dir.name]
    assert before.status(run_dir.name) == "STATUS_UNKNOWN"  # it may yet be resumed
    assert before.metric(run_dir.name, VALIDATION_ACCURACY)["trainingStep"] == 0
    assert after.status(run_dir.name) == "STATUS_SUCCESS"
    assert after.metric(run_dir.name, VALIDATION_ACCURACY)["trainingStep"] == 1
    assert session_summaries(run_dir) == ["start", "end"]


@pytest.mark.parametrize(
    ("resumed_from", "status", "written"),
    [
        (None, "completed", ["start", "end"]),
        (None, "failed", ["start"]),
        (None, "interrupted", ["start"]),
        (3, "completed", ["end"]),
        (3, "failed", []),
    ],
)
def test_a_session_starts_with_its_run_and_ends_only_when_it_completes(
    isolated: Path, resumed_from: int | None, status: str, written: list[str]
):
    """TensorBoard keeps the first start and end of a session: a resume, or an end that a
    resume could still change, would be shown in place of the truth."""
    callback = TensorBoard(isolated, {"learning_rate": 0.01, "backbone": "small_cnn"})
    start = RunStart(isolated, ["zoo"], {}, None, [], "default", "float32", None, resumed_from)

    callback.on_run_begin(start)  # it reads none of the run's splits, devices, ...
    callback.on_run_end(RunEnd(status, 3, ()))

    assert session_summaries(isolated) == written
