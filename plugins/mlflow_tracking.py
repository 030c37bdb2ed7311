"""MLflow tracking: each zoo run as an MLflow run (``zoo run ... --track mlflow``).

An ordinary plugin (``register_observers``), written as a third party would write it. The
MLflow run gets the run's settings and component parameters as params; each epoch's
metrics (step = the epoch, counted over both stages, with ``fine_tuning`` 0 or 1); tags
for the components, zoo's and the plugins' versions; the test figures; and config.json,
metrics.json and the confusion matrix as artifacts (model.keras too with
``log_model``). Its id goes into the run directory (``mlflow.json``) when the run starts,
so a resume, even after SIGKILL, continues the same MLflow run, and first logs the saved
epochs MLflow lacks (a kill can come between a checkpoint and its upload); metrics.json
records it under ``tracking.mlflow``. MLflow prints nothing: zoo's stdout is data.

Nothing waits on the network during training: every MLflow call runs on one background
thread, in order. The first asks the server with a short timeout (``timeout``); a server
that does not answer, or an error later, is said once and the run trains on untracked.
At the end the queue is given ``flush_timeout`` seconds to drain.

By default the store is local, a SQLite file beside the runs (``runs/mlflow.db``, artifacts
in ``runs/mlartifacts``), which ``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``
shows. ``$MLFLOW_TRACKING_URI`` or the ``tracking_uri`` parameter point elsewhere.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import zoo

from .mlflow_client import Queue, probe, quiet_client, read_small, shown

INSTALL = "pip install 'zoo[mlflow]'"
#: Where the MLflow run's ids are kept in the run directory, for a resume.
RUN_FILE = "mlflow.json"
#: An MLflow run id: 32 lowercase hex digits (a uuid4 without dashes).
RUN_ID = re.compile(r"[0-9a-f]{32}")
#: What an interrupted, failed or completed zoo run is in MLflow.
STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
#: The run directory's files uploaded when the run ends.
ARTIFACTS = ("config.json", "metrics.json", "confusion_matrix.png")


def installed() -> bool:
    """Whether mlflow can be imported, found without importing it (it takes seconds)."""
    try:
        return importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):  # ValueError: blocked, sys.modules["mlflow"] = None
        return False


@zoo.hookimpl
def register_observers(register: Callable[[zoo.Observer], None]) -> None:
    register(
        zoo.Observer(
            name="mlflow",
            description="Track runs in MLflow: params, metrics per epoch, test figures, files",
            params=[
                zoo.Param(
                    "tracking_uri",
                    str,
                    "",
                    "the tracking server or store (default: $MLFLOW_TRACKING_URI, else "
                    "sqlite:///OUTPUT/mlflow.db beside the runs)",
                ),
                zoo.Param(
                    "experiment",
                    str,
                    "",
                    "the experiment (default: $MLFLOW_EXPERIMENT_NAME, else the dataset's name)",
                ),
                zoo.Param(
                    "log_model",
                    bool,
                    False,
                    "upload model.keras too (a ResNet50 model is about 95 MB)",
                ),
                zoo.Param("timeout", float, 5.0, "seconds to wait for the server", minimum=0.1),
                zoo.Param(
                    "flush_timeout",
                    float,
                    120.0,
                    "seconds the run's end waits for what is left to log",
                    minimum=0,
                ),
            ],
            build=build,
        )
    )
    if not installed():
        raise zoo.PluginUnavailable("needs the package mlflow", install=INSTALL)


def build(params: Mapping[str, Any], run: zoo.ObservedRun) -> MlflowObserver:
    """The observer of ``run``, with its tracking URI and experiment chosen."""
    uri = params["tracking_uri"] or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        uri = f"sqlite:///{(run.output / 'mlflow.db').resolve()}"
    experiment = params["experiment"] or os.environ.get("MLFLOW_EXPERIMENT_NAME", "")
    return MlflowObserver(run, uri, experiment or run.config.dataset.name, params)


class MlflowObserver(zoo.Callback):
    """A zoo run as an MLflow run: see the module's docstring."""

    def __init__(
        self, run: zoo.ObservedRun, uri: str, experiment: str, params: Mapping[str, Any]
    ) -> None:
        self.run, self.uri, self.experiment = run, uri, experiment
        self.log_model, self.timeout = params["log_model"], params["timeout"]
        self.flush_timeout = params["flush_timeout"]
        self.client: Any = None
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.run_dir: Path | None = None
        self.queue: Queue | None = None
        self.unfinished: str | None = None
        self.warned = False

    def recorded(self) -> dict[str, Any] | None:
        """What metrics.json keeps under ``tracking.mlflow``."""
        said: dict[str, Any] = {"tracking_uri": shown(self.uri), "experiment": self.experiment}
        if self.run_id is not None:
            said |= {"run_id": self.run_id, "experiment_id": self.experiment_id}
        error = self.queue.failure if self.queue is not None else None
        if error or self.unfinished:
            said["error"] = error or self.unfinished
        return said

    def on_run_begin(self, start: zoo.RunStart) -> None:
        self.run_dir = start.run_dir
        self.queue = Queue()
        begun = int(time.time() * 1000)  # the saved epochs come before the ones to train
        self.queue.put(lambda: self._start(start, begun))

    def on_warning(self, warning: zoo.RunWarning) -> None:
        self._tag(f"zoo.warning.{warning.code}", warning.message[:5000])

    def on_epoch_end(self, epoch: zoo.EpochEnd) -> None:
        row = epoch.history[-1] if epoch.history else {}
        rate = {"learning_rate": row.get("learning_rate")}
        self._metrics(_epoch_values({**epoch.logs, **rate}, epoch.stage), epoch.epoch)
        self._said()

    def on_stage_end(self, stage: str, stopped: str | None) -> None:
        if stopped:
            self._tag(f"zoo.{stage}.stopped", stopped)

    def on_evaluation(self, evaluation: Any) -> None:
        scored = evaluation.to_dict()
        macro = {f"test_macro_{k}": v for k, v in scored["macro"].items() if v is not None}
        self._metrics({"test_examples": scored["examples"], **macro}, None)

    def on_run_end(self, end: zoo.RunEnd) -> None:
        if self.queue is None:
            return
        if end.test:
            self._metrics({f"test_{k}": v for k, v in end.test.items()}, None)
        if end.kept and end.kept.get("epoch") is not None:  # the epoch saved and tested
            self._tag("zoo.kept_epoch", str(end.kept["epoch"]))
        self.queue.put(lambda: self._finish(end))
        # Whoever pressed Ctrl-C is waiting: a few seconds for the rest, not minutes.
        wait = self.flush_timeout if end.status != "interrupted" else min(self.flush_timeout, 10)
        if not self.queue.close(wait):
            self.unfinished = f"what was left to log did not finish in {wait:g} s"
            self._warn(self.unfinished)
        self._said()

    # --- on the background thread

    def _start(self, start: zoo.RunStart, begun: int) -> None:
        quiet_client()
        probe(self.uri, self.timeout)
        from mlflow.tracking import MlflowClient

        # Importing mlflow sets its loggers to INFO, so they are quietened after it.
        for chatty in ("mlflow", "alembic"):  # its INFO lines on creating a SQLite store
            logging.getLogger(chatty).setLevel(logging.WARNING)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment_id = self._experiment_id()
        self.run_id = self._resumed() if start.resumed_from is not None else None
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self._create(start)
        if start.history:
            self._backfill(start.history, begun)

    def _create(self, start: zoo.RunStart) -> None:
        """A new MLflow run, with its tags and params; its id kept in the run directory."""
        from mlflow.entities import Param

        name = start.run_dir.name if start.run_dir is not None else None
        created = self.client.create_run(self.experiment_id, run_name=name, tags=self._tags())
        self.run_id = created.info.run_id
        self._keep_run_id()
        params = [Param(key, str(value)[:6000]) for key, value in self.run.config.flat().items()]
        for at in range(0, len(params), 100):  # MLflow takes 100 params per batch
            self.client.log_batch(self.run_id, params=params[at : at + 100])

    def _backfill(self, history: tuple[dict[str, Any], ...], at: int) -> None:
        """Log the saved epochs the MLflow run lacks: those of a new run that resumes, or
        those a kill cut off between a checkpoint and its upload (``fine_tuning`` is
        logged every epoch, so its steps say which are there)."""
        from mlflow.entities import Metric

        logged = {m.step for m in self.client.get_metric_history(self.run_id, "fine_tuning")}
        metrics = [
            Metric(key, value, at, row["epoch"])
            for row in history
            if isinstance(row.get("epoch"), int) and row["epoch"] not in logged
            for key, value in _epoch_values(row, row.get("stage")).items()
        ]
        for first in range(0, len(metrics), 1000):  # MLflow takes 1000 metrics per batch
            self.client.log_batch(self.run_id, metrics=metrics[first : first + 1000])

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        location = None
        if self.uri.startswith("sqlite:"):  # beside the runs, not in the working folder
            location = (self.run.output / "mlartifacts").resolve().as_uri()
        try:
            return str(self.client.create_experiment(self.experiment, artifact_location=location))
        except Exception:  # unless a run started beside this one created it meanwhile
            if (found := self.client.get_experiment_by_name(self.experiment)) is None:
                raise
            return str(found.experiment_id)

    def _resumed(self) -> str | None:
        """The MLflow run a resumed zoo run continues: the id mlflow.json keeps, when
        this store has that run (the file is data from the run directory, never trusted
        further: only its id is read, and only as 32 hex digits)."""
        assert self.run_dir is not None
        kept = read_small(self.run_dir / RUN_FILE)
        run_id = kept.get("run_id") if isinstance(kept, dict) else None
        if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
            return None
        try:
            found = self.client.get_run(run_id)
        except Exception:  # not in this store: a new MLflow run
            return None
        same = found.info.experiment_id == self.experiment_id
        return run_id if same and found.info.lifecycle_stage == "active" else None

    def _keep_run_id(self) -> None:
        if self.run_dir is None:
            return
        kept = {"run_id": self.run_id, "experiment_id": self.experiment_id}
        path = self.run_dir / RUN_FILE
        partial = path.with_name(f".{RUN_FILE}.partial")
        partial.unlink(missing_ok=True)  # a link left there is removed, never followed
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        with os.fdopen(os.open(partial, flags, 0o644), "w", encoding="utf-8") as file:
            file.write(json.dumps(kept, indent=2) + "\n")
        partial.replace(path)

    def _tags(self) -> dict[str, str]:
        config, run = self.run.config, self.run
        tags = {f"zoo.{c.kind}": c.name for c in config.choices}
        plugins = {name: version for name, version in run.versions.items() if name != "zoo"}
        tags |= {f"zoo.plugin.{name}": version for name, version in plugins.items()}
        tags["zoo.version"] = run.versions["zoo"]
        if self.run_dir is not None:
            tags["zoo.run_dir"] = str(self.run_dir.resolve())
        return tags

    def _finish(self, end: zoo.RunEnd) -> None:
        assert self.run_dir is not None and self.run_id is not None
        for name in ARTIFACTS:
            if (self.run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(self.run_dir / name))
        model = self.run_dir / "model.keras"
        if self.log_model and end.status == "completed" and model.is_file():
            self.client.log_artifact(self.run_id, str(model), artifact_path="model")
        self.client.set_terminated(self.run_id, status=STATUS.get(end.status, "FAILED"))

    # --- on the training thread: what goes on the queue

    def _metrics(self, values: Mapping[str, float], step: int | None) -> None:
        at = int(time.time() * 1000)
        plain = {k: float(v) for k, v in values.items() if isinstance(v, int | float)}

        def log() -> None:
            from mlflow.entities import Metric

            if self.run_id is not None:
                metrics = [Metric(k, v, at, step or 0) for k, v in plain.items()]
                self.client.log_batch(self.run_id, metrics=metrics)

        if self.queue is not None:
            self.queue.put(log)

    def _tag(self, key: str, value: str) -> None:
        def tag() -> None:
            if self.run_id is not None:
                self.client.set_tag(self.run_id, key, value)

        if self.queue is not None:
            self.queue.put(tag)

    def _said(self) -> None:
        """Say once, on the training thread, that tracking stopped, and why."""
        if self.queue is not None and self.queue.failure is not None:
            self._warn(self.queue.failure)

    def _warn(self, why: str) -> None:
        if not self.warned:
            self.warned = True
            zoo.warning(
                f"MLflow tracking ({shown(self.uri)}) stopped: {why}. The run trains on and is "
                "recorded in its run directory as always; metrics.json says what was "
                "tracked (tracking.mlflow)."
            )


def _epoch_values(row: Mapping[str, Any], stage: str | None) -> dict[str, Any]:
    """An epoch's metrics as MLflow gets them: its numbers, and ``fine_tuning`` 0 or 1."""
    numbers = {k: v for k, v in row.items() if k != "epoch" and isinstance(v, int | float)}
    return numbers | {"fine_tuning": float(stage == "fine_tune")}
