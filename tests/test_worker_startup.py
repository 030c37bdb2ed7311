"""Several workers start within a time limit and answer Ctrl-C: ``TF_CONFIG`` is checked
field by field, and every peer is reached before TensorFlow's start-up, which holds off
signals (``zoo/train/workers.py``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import TINY_RUN, closed_port, run_zoo, zoo_executable

from zoo.errors import ZooError
from zoo.train import workers
from zoo.train.distribute import writes_run

RUN = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN]


def one_line(text: str) -> str:
    return " ".join(text.split())


def tf_config(hosts: list[str], index: int = 0, kind: str = "worker") -> str:
    return json.dumps({"cluster": {"worker": hosts}, "task": {"type": kind, "index": index}})


def with_a_missing_peer() -> tuple[dict[str, str], str]:
    """The environment of worker 0 of two whose peer never starts, and its address."""
    peer = f"127.0.0.1:{closed_port()}"
    hosts = [f"127.0.0.1:{closed_port()}", peer]
    return {"TF_CONFIG": tf_config(hosts), workers.ENV: "3"}, peer


def test_a_peer_that_never_answers_is_named_once_the_time_limit_passes(isolated: Path):
    env, peer = with_a_missing_peer()

    result = run_zoo(*RUN, cwd=isolated, env=env)

    message = one_line(result.stderr)
    assert result.exit_code == 2, result.stderr
    assert f"waiting for workers that do not answer yet: {peer}" in message
    assert f"a worker of TF_CONFIG did not answer within 3 s: {peer} (nothing listens" in message
    assert "Traceback" not in message
    assert not (isolated / "runs").exists()


def read_lines(stream, lines: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: lines.extend(stream), daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, -15)])
def test_a_signal_while_waiting_for_a_peer_stops_zoo_at_once(isolated: Path, sent, code):
    env, _ = with_a_missing_peer()
    proc = subprocess.Popen(
        [zoo_executable(), *RUN],
        cwd=isolated,
        env={**os.environ, **env, workers.ENV: "600"},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: list[str] = []
    reader = read_lines(proc.stderr, lines)
    try:
        deadline = time.monotonic() + 180
        while not any("waiting for workers" in line for line in lines):
            assert time.monotonic() < deadline, "no word of waiting: " + "".join(lines)
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.05)
        proc.send_signal(sent)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        reader.join(timeout=30)

    assert proc.returncode == code, "".join(lines)
    assert "Traceback" not in "".join(lines)


def test_a_task_index_past_the_cluster_is_named(isolated: Path):
    hosts = [f"127.0.0.1:{closed_port()}", f"127.0.0.1:{closed_port()}"]

    result = run_zoo(*RUN, cwd=isolated, env={"TF_CONFIG": tf_config(hosts, index=2)})

    assert result.exit_code == 2, result.stderr
    assert "'task.index' is 2, past the 2 addresses of 'cluster.worker' (indexes 0-1)" in (
        one_line(result.stderr)
    )
    assert "Traceback" not in result.stderr


def test_tf_config_that_is_not_json_is_named(isolated: Path):
    result = run_zoo(*RUN, cwd=isolated, env={"TF_CONFIG": "{'cluster': 1}"})

    assert result.exit_code == 2, result.stderr
    assert "TF_CONFIG is not a valid cluster description: it is not JSON" in one_line(result.stderr)


# --- TF_CONFIG, field by field ---------------------------------------------------------

A, B = "10.0.0.1:2222", "10.0.0.2:2222"


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("[1, 2]", "it is not a JSON object"),
        ('{"task": {"type": "worker"}}', "it has no 'cluster' object"),
        ('{"cluster": {}, "task": {}}', "it has no 'cluster' object"),
        ('{"cluster": {"worker": "10.0.0.1:2222"}}', "'cluster.worker' is not a list"),
        ('{"cluster": {"worker": []}}', "'cluster.worker' is not a list"),
        ('{"cluster": {"worker": ["10.0.0.1"]}}', "'cluster.worker[0]' is '10.0.0.1', not"),
        ('{"cluster": {"worker": [":2222"]}}', "'cluster.worker[0]' is ':2222', not"),
        ('{"cluster": {"worker": ["h:99999"]}}', "'cluster.worker[0]' is 'h:99999', not"),
        ('{"cluster": {"worker": [7]}}', "'cluster.worker[0]' is 7, not"),
        (f'{{"cluster": {{"worker": ["{A}"]}}}}', "it has no 'task' object"),
        (f'{{"cluster": {{"worker": ["{A}"]}}, "task": {{}}}}', "'task.type' is None"),
        (
            f'{{"cluster": {{"worker": ["{A}"]}}, "task": {{"type": "ps"}}}}',
            "'task.type' is 'ps', which 'cluster' does not list (worker)",
        ),
        (
            f'{{"cluster": {{"worker": ["{A}"]}}, "task": {{"type": "worker", "index": "0"}}}}',
            "'task.index' is '0', not a whole number",
        ),
        (
            f'{{"cluster": {{"worker": ["{A}"]}}, "task": {{"type": "worker", "index": -1}}}}',
            "'task.index' is -1, not a whole number",
        ),
        (
            f'{{"cluster": {{"worker": ["{A}"]}}, "task": {{"type": "worker", "index": true}}}}',
            "'task.index' is True, not a whole number",
        ),
    ],
)
def test_each_wrong_field_of_tf_config_is_named(config: str, problem: str):
    with pytest.raises(ZooError) as raised:
        workers.read({"TF_CONFIG": config})

    assert raised.value.what.startswith("TF_CONFIG is not a valid cluster description")
    assert problem in raised.value.what
    assert raised.value.got == config


def test_a_cluster_with_a_chief_and_workers():
    config = {"cluster": {"chief": [A], "worker": [B, "[::1]:2222"]}, "task": {"type": "worker"}}

    cluster = workers.read({"TF_CONFIG": json.dumps(config)})

    assert cluster == workers.Cluster({"chief": (A,), "worker": (B, "[::1]:2222")}, "worker", 0)
    assert cluster.address == B and cluster.peers == [A, "[::1]:2222"]
    assert cluster.workers == 3 and not cluster.is_chief
    assert workers.read({"TF_CONFIG": " "}) is None


def test_only_the_chief_writes_the_run(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TF_CONFIG", tf_config([A, B], index=1))
    assert not writes_run("auto") and not writes_run("multiworker")
    assert writes_run("default")  # one machine's strategy: this process trains alone
    monkeypatch.setenv("TF_CONFIG", tf_config([A, B], index=0))
    assert writes_run("auto")


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan", "inf"])
def test_a_worker_timeout_that_is_not_a_number_of_seconds_is_named(value: str):
    with pytest.raises(ZooError, match=workers.ENV) as raised:
        workers.timeout({workers.ENV: value})

    assert raised.value.got == value
    assert workers.timeout({}) == workers.DEFAULT_TIMEOUT


def test_workers_started_one_after_the_other_find_each_other(monkeypatch: pytest.MonkeyPatch):
    hosts = [f"127.0.0.1:{closed_port()}", f"127.0.0.1:{closed_port()}"]
    first, second = (workers.Cluster({"worker": tuple(hosts)}, "worker", i) for i in (0, 1))
    monkeypatch.setenv(workers.ENV, "60")
    told: list[str] = []
    errors: list[BaseException] = []

    def wait_first() -> None:
        try:
            workers.wait_for_peers(first, told.append)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait_first)
    thread.start()
    while not told:  # the first is waiting for the second, which has not started
        time.sleep(0.05)
    workers.wait_for_peers(second, told.append)
    # Then the second's TensorFlow listens on its port, where the first finds it.
    with socket.create_server(("", int(hosts[1].rpartition(":")[2]))):
        thread.join(timeout=60)

    assert not thread.is_alive() and errors == []
    assert told == [
        f"waiting for workers that do not answer yet: {hosts[1]} (nothing listens there: "
        f"connection refused); zoo waits up to 60 s ({workers.ENV}) for every worker of "
        "TF_CONFIG to start"
    ]


def test_a_port_in_use_on_this_worker_is_named():
    with socket.create_server(("", 0)) as taken:
        mine = f"127.0.0.1:{taken.getsockname()[1]}"
        cluster = workers.Cluster({"worker": (mine, f"127.0.0.1:{closed_port()}")}, "worker", 0)
        with pytest.raises(ZooError, match=f"cannot listen on its address {mine}"):
            workers.wait_for_peers(cluster, lambda text: None)


def test_an_evaluator_beside_the_cluster_is_not_waited_for():
    """TensorFlow's evaluator task does not join the training's start-up."""
    config = {"cluster": {"worker": [A, B], "evaluator": ["127.0.0.1:1"]}, "task": {"index": 1}}
    config["task"]["type"] = "worker"

    cluster = workers.read({"TF_CONFIG": json.dumps(config)})

    assert cluster is not None and cluster.peers == [A]
