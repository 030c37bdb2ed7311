"""MLflow tracking (``zoo run ... --track mlflow``), read back from a real tracking server.

One ``mlflow server`` on loopback serves the module. zoo runs are real ``zoo`` processes
that track to it; the tests read what arrived with ``MlflowClient``, as a user would,
and with MLflow's own web UI in headless Chromium. The rest: a resume after SIGKILL, a
damaged ``mlflow.json``, a resume with ``--track ''``, servers that refuse or never
answer, the default local store, and mlflow not installed.

``ZOO_SCREENSHOT_DIR=DIR`` also saves MLflow's page of a run as ``DIR/mlflow-run.png``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import TINY_RUN, Result, closed_port, run_zoo, write, zoo_executable

pytest.importorskip("mlflow", reason="needs mlflow: pip install 'zoo[mlflow]'")

#: Two quick epochs of the shapes dataset, tracked in MLflow.
TRACKED_RUN = [
    "run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--epochs", "2", "--track", "mlflow",
]  # fmt: skip
#: What the tests' own environment may hold that would change a run or where it is tracked.
UNSET = dict.fromkeys(
    ["MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "ZOO_REGISTRY", "ZOO_DISABLE_PLUGINS"]
)
#: The test hook that holds a run where it is (zoo.train.durability.interrupts).
PAUSE = "ZOO_TEST_PAUSE"
#: Run first by every process with it on PYTHONPATH: mlflow cannot be imported.
WITHOUT_MLFLOW = 'import sys\n\nsys.modules["mlflow"] = None\n'
#: A run on two CPU cores takes about ten seconds; a stuck tracker would add minutes.
BOUND_S = 60


def environment(folder: Path, uri: str | None = None, experiment: str | None = None) -> dict:
    """A zoo process's environment: tracking to ``uri`` (``None``: the registry file or
    the default store) in ``experiment``, its caches in ``folder``."""
    env = {**UNSET, "ZOO_CACHE_DIR": str(folder / ".zoo-cache")}
    return env | {"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": experiment}


def mlflow_lines(stderr: str) -> list[str]:
    """What zoo said of MLflow, and what MLflow's own loggers said (``INFO mlflow.store``)."""
    return [line for line in stderr.splitlines() if re.search(r"MLflow|mlflow\.|alembic", line)]


def history(client: Any, run_id: str, metric: str) -> list[Any]:
    """Every value MLflow keeps of ``metric``, by step (an epoch logged twice is there twice)."""
    return sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)


def steps(client: Any, run_id: str, metric: str) -> list[int]:
    return [m.step for m in history(client, run_id, metric)]


def values(client: Any, run_id: str, metric: str) -> list[float]:
    return [m.value for m in history(client, run_id, metric)]


def kept_run_id(run_dir: Path) -> str:
    return json.loads((run_dir / "mlflow.json").read_text())["run_id"]


# --- The server, and runs tracked to it, shared by the module.


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on a free loopback port, a SQLite store, artifacts served by it."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    url = f"http://127.0.0.1:{closed_port()}"
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination", str(folder / "artifacts"),
        "--host", "127.0.0.1", "--port", url.rpartition(":")[2], "--workers", "1",
    ]  # fmt: skip
    # Its job runner is a second Python process the tests need not wait for.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = folder / "server.log"
    with log.open("w") as output:
        proc = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        wait_until_healthy(url, proc, log)
        yield url
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen) -> None:
    """Stop ``proc`` and what it started (the server's uvicorn worker): its own session."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_until_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"mlflow server exited:\n{log.read_text()}"
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2):
            return
        time.sleep(0.2)
    raise AssertionError(f"mlflow server not ready in 180 s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def client(server: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(server)


@dataclass(frozen=True)
class Tracked:
    """A finished zoo run: its directory, its ``--json`` output, what it said on stderr."""

    run_dir: Path
    metrics: dict[str, Any]
    stderr: str

    @property
    def run_id(self) -> str:
        return self.metrics["tracking"]["mlflow"]["run_id"]


@pytest.fixture(scope="module")
def tracked(server: str, tmp_path_factory: pytest.TempPathFactory) -> Tracked:
    """Two epochs tracked to the server, set up as a user would in registry.toml, with
    the model uploaded too."""
    folder = tmp_path_factory.mktemp("tracked")
    write(
        folder / "registry.toml",
        f"""
        [components.observer.mlflow]
        defaults = {{ tracking_uri = "{server}", experiment = "tracked", log_model = true }}
        """,
    )
    result = run_zoo(*TRACKED_RUN, "--json", cwd=folder, env=environment(folder))
    assert result.exit_code == 0, result.stderr
    metrics = result.json()  # stdout holds zoo's JSON alone: MLflow prints no links there
    return Tracked(folder / metrics["run_dir"], metrics, result.stderr)


@pytest.fixture(scope="module")
def interrupted(server: str, client: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run stopped by Ctrl-C as its epoch 2 began (exit 130): epoch 1 is saved, and
    its MLflow run is KILLED with that epoch. Tests resume copies of it."""
    folder = tmp_path_factory.mktemp("interrupted")
    env = environment(folder, server, "interrupted") | {"ZOO_TEST_SIGINT": "epoch.begin@2"}
    result = run_zoo(*TRACKED_RUN, cwd=folder, env=env)
    assert result.exit_code == 130, result.stderr
    [run_dir] = folder.glob("runs/*-shapes-*")
    assert client.get_run(kept_run_id(run_dir)).info.status == "KILLED"
    return run_dir


def copy_of(run_dir: Path, folder: Path) -> Path:
    return Path(shutil.copytree(run_dir, folder / "runs" / run_dir.name))


def resume(run_dir: Path, uri: str, *more: str) -> Result:
    """``zoo run --resume run_dir`` beside it, tracking to ``uri`` in its experiment."""
    folder = run_dir.parent.parent
    env = environment(folder, uri, "interrupted")
    return run_zoo("run", "--resume", str(run_dir), "--json", *more, cwd=folder, env=env)


# --- What arrives in MLflow.


def test_the_run_arrives_with_its_params_epochs_tags_and_files(tracked: Tracked, client: Any):
    run = client.get_run(tracked.run_id)

    assert run.info.status == "FINISHED"
    assert run.info.run_name == tracked.run_dir.name
    params = run.data.params
    assert params["epochs"] == "2" and params["learning_rate"] == "0.001"
    assert params["dataset"] == "shapes" and params["dataset.num_images"] == "40"
    assert params["backbone"] == "small_cnn" and params["image_size"] == "32"
    assert params["head"] == "gap_sigmoid" and params["track"] == "mlflow"
    for metric in ("loss", "val_accuracy"):
        assert steps(client, tracked.run_id, metric) == [1, 2]
        kept = [row[metric] for row in tracked.metrics["history"]]
        assert values(client, tracked.run_id, metric) == pytest.approx(kept)
    assert run.data.metrics["test_accuracy"] == pytest.approx(tracked.metrics["test"]["accuracy"])


def test_its_tags_name_the_components_and_the_versions(tracked: Tracked, client: Any):
    import zoo

    tags = client.get_run(tracked.run_id).data.tags

    assert tags["zoo.dataset"] == "shapes"
    assert tags["zoo.backbone"] == "small_cnn" and tags["zoo.head"] == "gap_sigmoid"
    assert tags["zoo.version"] == zoo.__version__
    for plugin in ("shapes", "small_cnn", "heads", "mlflow_tracking"):
        assert tags[f"zoo.plugin.{plugin}"] == f"zoo {zoo.__version__}"
    assert tags["zoo.kept_epoch"] == str(tracked.metrics["kept"]["epoch"])


def test_its_files_are_uploaded_the_model_too_with_log_model(
    tracked: Tracked, client: Any, tmp_path: Path
):
    listed = {f.path for f in client.list_artifacts(tracked.run_id)}
    model = [f.path for f in client.list_artifacts(tracked.run_id, "model")]
    uploaded = Path(client.download_artifacts(tracked.run_id, "config.json", str(tmp_path)))

    assert listed == {"config.json", "metrics.json", "confusion_matrix.png", "model"}
    assert model == ["model/model.keras"]
    assert uploaded.read_bytes() == (tracked.run_dir / "config.json").read_bytes()


def test_the_run_directory_and_metrics_json_keep_the_mlflow_run_id(
    tracked: Tracked, client: Any, server: str
):
    recorded = json.loads((tracked.run_dir / "metrics.json").read_text())["tracking"]["mlflow"]
    [listed] = client.search_runs([recorded["experiment_id"]])

    assert recorded["run_id"] == listed.info.run_id == kept_run_id(tracked.run_dir)
    assert recorded["tracking_uri"] == server and recorded["experiment"] == "tracked"
    assert "error" not in recorded
    assert mlflow_lines(tracked.stderr) == []  # nothing said: it all worked


# --- Resumes.


def test_a_run_killed_after_an_epoch_resumes_into_the_same_mlflow_run(
    server: str, client: Any, isolated: Path
):
    env = environment(isolated, server, "killed")
    run_dir, run_id = kill_after_first_epoch(isolated, env, client)
    assert client.get_run(run_id).info.status == "RUNNING"  # SIGKILL let it say nothing

    resumed = run_zoo("run", "--resume", str(run_dir), "--json", cwd=isolated, env=env)

    assert resumed.exit_code == 0, resumed.stderr
    metrics = resumed.json()
    assert metrics["tracking"]["mlflow"]["run_id"] == run_id == kept_run_id(run_dir)
    assert client.get_run(run_id).info.status == "FINISHED"
    for metric in ("loss", "val_accuracy"):
        assert steps(client, run_id, metric) == [1, 2, 3]  # each epoch once
        kept = [row[metric] for row in metrics["history"]]
        assert values(client, run_id, metric) == pytest.approx(kept)


def kill_after_first_epoch(folder: Path, env: dict, client: Any) -> tuple[Path, str]:
    """Start three tracked epochs, held as epoch 2 begins; SIGKILL it once MLflow has
    epoch 1. Return its run directory and MLflow run id."""
    changed = {**os.environ, **env, PAUSE: "epoch.begin@2"}
    proc = subprocess.Popen(
        [zoo_executable(), *TRACKED_RUN, "--epochs", "3"],
        cwd=folder,
        env={name: value for name, value in changed.items() if value is not None},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for kept in folder.glob("runs/*/mlflow.json"):
            run_id = kept_run_id(kept.parent)
            if steps(client, run_id, "loss") == [1]:
                proc.kill()
                proc.communicate(timeout=60)
                return kept.parent, run_id
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"MLflow never got epoch 1: {proc.communicate()[1]}")


#: What a damaged or planted mlflow.json may hold, given another experiment's run id.
DAMAGED: dict[str, Callable[[str], object]] = {
    "garbage": lambda other: "\x00\ufffd{ not json",
    "an unknown run id": lambda other: {"run_id": uuid.uuid4().hex},
    "code and a URL": lambda other: {
        "run_id": "__import__('pathlib').Path('pwned').touch()",
        "tracking_uri": f"http://127.0.0.1:{closed_port()}",
    },
    "another experiment's run": lambda other: {"run_id": other, "experiment_id": "0"},
}


@pytest.mark.parametrize("damage", DAMAGED)
def test_a_damaged_mlflow_json_resumes_into_a_new_mlflow_run(
    damage: str, interrupted: Path, tracked: Tracked, server: str, client: Any, isolated: Path
):
    before = kept_run_id(interrupted)
    run_dir = copy_of(interrupted, isolated)
    planted = DAMAGED[damage](tracked.run_id)
    text = planted if isinstance(planted, str) else json.dumps(planted)
    (run_dir / "mlflow.json").write_text(text)

    resumed = resume(run_dir, server)

    assert resumed.exit_code == 0, resumed.stderr
    assert mlflow_lines(resumed.stderr) == []  # the planted URL was not followed
    run_id = resumed.json()["tracking"]["mlflow"]["run_id"]
    assert run_id not in (before, tracked.run_id)
    assert kept_run_id(run_dir) == run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    assert steps(client, run_id, "loss") == [1, 2]  # epoch 1 from the checkpoint
    assert steps(client, before, "loss") == [1]  # the old ones are left as they were
    assert steps(client, tracked.run_id, "loss") == [1, 2]
    assert not (isolated / "pwned").exists()


def test_a_resume_with_track_empty_tracks_nothing(
    interrupted: Path, server: str, client: Any, isolated: Path
):
    before = kept_run_id(interrupted)
    run_dir = copy_of(interrupted, isolated)

    resumed = resume(run_dir, server, "--track", "")

    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["status"] == "completed"
    assert kept_run_id(run_dir) == before
    assert client.get_run(before).info.status == "KILLED"
    assert steps(client, before, "loss") == [1]


# --- A server that is not there, or not answering: the run trains on, untracked.


@contextlib.contextmanager
def refusing() -> Iterator[str]:
    """A port nothing listens on."""
    yield f"http://127.0.0.1:{closed_port()}"


@contextlib.contextmanager
def silent() -> Iterator[str]:
    """A socket that takes connections (the kernel accepts them) and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as sock:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.contextmanager
def stalling() -> Iterator[str]:
    """A server that answers its health check, then never answers MLflow's calls."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/health":
                release.wait(120)
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    served = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=served.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{served.server_address[1]}"
    finally:
        release.set()
        served.shutdown()
        served.server_close()


@pytest.mark.parametrize("dead", [refusing, silent, stalling], ids=lambda dead: dead.__name__)
def test_a_dead_server_costs_one_warning_and_seconds(dead: Callable, isolated: Path):
    write(
        isolated / "registry.toml",
        """
        [components.observer.mlflow]
        defaults = { timeout = 2.0, flush_timeout = 3.0 }
        """,
    )
    with dead() as uri:
        started = time.monotonic()
        result = run_zoo(*TRACKED_RUN, "--json", cwd=isolated, env=environment(isolated, uri))
        took = time.monotonic() - started

    assert result.exit_code == 0, result.stderr
    [said] = mlflow_lines(result.stderr)
    assert said.startswith(f"warning: MLflow tracking ({uri}) stopped: ")
    assert took < BOUND_S
    run_dir = isolated / result.json()["run_dir"]
    assert (run_dir / "model.keras").is_file()
    recorded = result.json()["tracking"]["mlflow"]
    assert recorded["tracking_uri"] == uri and recorded["error"]
    assert "run_id" not in recorded and not (run_dir / "mlflow.json").exists()


# --- The default store, and no mlflow.


# Reading the SQLite store in this process, MLflow sets up SQLAlchemy in a deprecated way.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*")
def test_without_a_uri_runs_are_tracked_in_sqlite_beside_them(isolated: Path):
    from mlflow import MlflowClient

    result = run_zoo(*TRACKED_RUN, "--json", cwd=isolated, env=environment(isolated))

    assert result.exit_code == 0, result.stderr
    assert mlflow_lines(result.stderr) == []  # not even its INFO lines on creating the store
    runs = isolated / "runs"
    recorded = result.json()["tracking"]["mlflow"]
    assert recorded["tracking_uri"] == f"sqlite:///{runs / 'mlflow.db'}"
    client = MlflowClient(recorded["tracking_uri"])
    run = client.get_run(recorded["run_id"])
    assert run.info.status == "FINISHED" and steps(client, recorded["run_id"], "loss") == [1, 2]
    uploaded = runs / "mlartifacts" / recorded["run_id"] / "artifacts"
    # No model: log_model is off by default.
    assert sorted(path.name for path in uploaded.iterdir()) == [
        "config.json", "confusion_matrix.png", "metrics.json",
    ]  # fmt: skip


@pytest.mark.parametrize("asked", ["flag", "registry"])
def test_without_mlflow_tracking_says_what_to_install(asked: str, isolated: Path):
    write(isolated / "no_mlflow" / "sitecustomize.py", WITHOUT_MLFLOW)
    env = environment(isolated) | {"PYTHONPATH": str(isolated / "no_mlflow")}
    args = TRACKED_RUN
    if asked == "registry":
        write(isolated / "registry.toml", '[run]\ntrack = "mlflow"\n')
        args = TRACKED_RUN[: TRACKED_RUN.index("--track")]

    result = run_zoo(*args, cwd=isolated, env=env)

    assert result.exit_code == 2
    assert "the observer 'mlflow' is unavailable" in result.stderr
    assert "pip install 'zoo[mlflow]'" in result.stderr
    assert "Traceback" not in result.stderr and not (isolated / "runs").exists()


# --- MLflow's own web UI.


#: Chromium or Chrome, where one is installed.
BROWSER = next(
    filter(None, map(shutil.which, ["chromium", "chromium-browser", "google-chrome"])), None
)


def headless(url: str, profile: Path, *action: str) -> subprocess.CompletedProcess[str]:
    """Chromium loads ``url`` and waits up to 15 s of page time for MLflow's app to draw."""
    command = [
        str(BROWSER), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1400,1800",
        "--virtual-time-budget=15000", *action, url,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(
    BROWSER is None,
    reason="needs Chromium or Chrome on PATH (chromium, chromium-browser, google-chrome)",
)
def test_mlflow_s_web_ui_shows_the_run_and_its_metrics(
    tracked: Tracked, server: str, isolated: Path
):
    recorded = tracked.metrics["tracking"]["mlflow"]
    page = f"{server}/#/experiments/{recorded['experiment_id']}/runs/{tracked.run_id}"

    shown = headless(page, isolated / "profile", "--dump-dom")

    assert shown.returncode == 0, shown.stderr[-2000:]
    assert tracked.run_dir.name in shown.stdout
    assert "val_accuracy" in shown.stdout and "test_accuracy" in shown.stdout
    if folder := os.environ.get("ZOO_SCREENSHOT_DIR"):  # for a note on the change
        picture = Path(folder).resolve() / "mlflow-run.png"
        picture.parent.mkdir(parents=True, exist_ok=True)
        headless(page, isolated / "profile", f"--screenshot={picture}")
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- Small pieces of the plugin, in this process.


def test_a_planted_mlflow_json_is_read_only_when_small_and_a_plain_file(isolated: Path):
    from zoo.builtins.mlflow_client import RUN_FILE_LIMIT, read_small

    os.mkfifo(isolated / "fifo")  # opening it would wait for a writer forever
    (isolated / "big").write_text(json.dumps({"run_id": "0" * 32, "pad": "x" * RUN_FILE_LIMIT}))
    (isolated / "zeros").symlink_to("/dev/zero")
    (isolated / "fine").write_text(json.dumps({"run_id": "0" * 32}))
    names = ("fifo", "big", "zeros", "fine")
    read: dict[str, Any] = {}
    reader = threading.Thread(
        target=lambda: read.update((name, read_small(isolated / name)) for name in names),
        daemon=True,
    )
    reader.start()
    reader.join(10)

    assert not reader.is_alive()
    assert read == {"fifo": None, "big": None, "zeros": None, "fine": {"run_id": "0" * 32}}


def test_a_password_in_the_tracking_uri_passes_the_probe_and_is_nevershown(server: str):
    from zoo.builtins.mlflow_client import probe, shown

    uri = server.replace("http://", "http://zoo:s3cret@")

    probe(uri, timeout=5)  # raises ConnectionError if urllib is handed the login

    assert shown(uri) == server.replace("http://", "http://zoo:***@")
    assert shown(server) == server
