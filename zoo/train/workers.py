"""Several workers: ``TF_CONFIG`` checked, and every peer reached before TensorFlow starts.

TensorFlow's ``MultiWorkerMirroredStrategy`` waits for its peers inside gRPC code that
prints nothing and holds off Ctrl-C and SIGTERM, for minutes. So zoo first checks
``TF_CONFIG`` field by field (:func:`read`), then connects to every peer's address with
plain sockets, again and again until all answer or ``ZOO_WORKER_TIMEOUT`` seconds
(default :data:`DEFAULT_TIMEOUT`) have passed, since workers are started one after
another (:func:`wait_for_peers`). Meanwhile it listens on its own address, so that
peers doing the same find it. A peer that never answers is a user error naming its
address; Ctrl-C and SIGTERM stop the wait at once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from zoo.errors import ZooError

#: The environment variable that bounds the wait for the other workers, in seconds.
ENV = "ZOO_WORKER_TIMEOUT"
#: Two minutes: time to start the workers of a small cluster by hand.
DEFAULT_TIMEOUT = 120.0
#: The task types that train (a ``ps`` or ``evaluator`` task is no worker of zoo's).
TRAINING = ("chief", "worker")
#: Seconds between rounds of connections, and at most for one connection.
_PAUSE = 0.5
_CONNECT = 2.0

EXAMPLE = (
    'JSON like {"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
    '"task": {"type": "worker", "index": 0}}'
)


@dataclass(frozen=True)
class Cluster:
    """``TF_CONFIG``, checked: the addresses of each task type, and this task."""

    addresses: Mapping[str, tuple[str, ...]]
    task_type: str
    task_index: int

    @property
    def address(self) -> str:
        """This worker's own address."""
        return self.addresses[self.task_type][self.task_index]

    @property
    def peers(self) -> list[str]:
        """Every other address that trains (chief and workers), in order, each once: an
        evaluator beside the cluster does not take part in start-up."""
        everyone = (a for kind in TRAINING for a in self.addresses.get(kind, ()))
        return [a for a in dict.fromkeys(everyone) if a != self.address]

    @property
    def workers(self) -> int:
        return sum(len(self.addresses.get(kind, ())) for kind in TRAINING)

    @property
    def is_chief(self) -> bool:
        """The chief writes the run: the ``chief`` task, or worker 0 when there is none."""
        if "chief" in self.addresses:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0


def read(environ: Mapping[str, str] = os.environ) -> Cluster | None:
    """``TF_CONFIG`` checked; ``None`` when it is unset or empty.

    Raises:
        ZooError: it is not JSON, or a field is missing, of the wrong type, or out of
            range; the message names the field.
    """
    text = environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise _invalid(f"it is not JSON ({exc})", text) from None
    if not isinstance(config, dict):
        raise _invalid("it is not a JSON object", text)
    addresses = _addresses(config.get("cluster"), text)
    task = config.get("task")
    if not isinstance(task, dict):
        raise _invalid("it has no 'task' object (this worker's type and index)", text)
    kind, index = task.get("type"), task.get("index", 0)
    if not isinstance(kind, str) or kind not in addresses:
        listed = ", ".join(addresses)
        raise _invalid(f"'task.type' is {kind!r}, which 'cluster' does not list ({listed})", text)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise _invalid(f"'task.index' is {index!r}, not a whole number from 0", text)
    if index >= len(addresses[kind]):
        count = len(addresses[kind])
        raise _invalid(
            f"'task.index' is {index}, past the {count} address{'es' * (count != 1)} of "
            f"'cluster.{kind}' (indexes 0-{count - 1})",
            text,
        )
    return Cluster(addresses, kind, index)


def _addresses(cluster: Any, text: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(cluster, dict) or not cluster:
        raise _invalid("it has no 'cluster' object (each task type's addresses)", text)
    addresses = {}
    for kind, listed in cluster.items():
        if not isinstance(listed, list) or not listed:
            raise _invalid(f"'cluster.{kind}' is not a list of \"host:port\" addresses", text)
        for i, address in enumerate(listed):
            if _split(address) is None:
                raise _invalid(f"'cluster.{kind}[{i}]' is {address!r}, not \"host:port\"", text)
        addresses[kind] = tuple(listed)
    return addresses


def _split(address: Any) -> tuple[str, int] | None:
    """``("host", port)`` of ``"host:port"`` (``"[::1]:port"`` for IPv6), else ``None``."""
    if not isinstance(address, str):
        return None
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def _invalid(problem: str, text: str) -> ZooError:
    return ZooError(
        f"TF_CONFIG is not a valid cluster description: {problem}.",
        expected=EXAMPLE,
        fix="correct TF_CONFIG on this worker, or unset it to train on this machine alone",
        got=text if len(text) <= 500 else text[:500] + "...",
    )


def timeout(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds to wait for the other workers: ``ZOO_WORKER_TIMEOUT``, checked."""
    text = environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ZooError(
            f"{ENV} is not a number of seconds.",
            expected="a positive number of seconds to wait for the other workers to start",
            fix=f"set {ENV}={DEFAULT_TIMEOUT:g} (the default), or unset it",
            got=text,
        )
    return seconds


def wait_for_peers(cluster: Cluster, waiting: Callable[[str], None]) -> None:
    """Return once every peer of ``cluster`` accepts a connection.

    Args:
        waiting: Told once, with the addresses that did not answer at first.

    Raises:
        ZooError: this worker cannot listen on its own address, or a peer did not
            answer within :func:`timeout` seconds.
    """
    limit = timeout()
    deadline = time.monotonic() + limit
    missing = dict.fromkeys(cluster.peers, "")
    told = False
    with _listening(cluster.address):
        while True:
            for address in list(missing):
                remaining = max(deadline - time.monotonic(), 0.1)
                problem = _reach(address, min(remaining, _CONNECT))
                if problem is None:
                    del missing[address]
                else:
                    missing[address] = problem
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise _unreachable(missing, limit)
            if not told:
                waiting(_waiting(missing, limit))
                told = True
            time.sleep(min(_PAUSE, max(deadline - time.monotonic(), 0)))


@contextlib.contextmanager
def _listening(address: str) -> Iterator[None]:
    """Accept connections on this worker's port (as TensorFlow will, on every
    interface) while it waits; connections are never read, and closed with it."""
    split = _split(address)
    assert split is not None, "read() checked every address"
    dual = socket.has_dualstack_ipv6()
    family = socket.AF_INET6 if dual else socket.AF_INET
    try:
        server = socket.create_server(("", split[1]), family=family, dualstack_ipv6=dual)
    except OSError as exc:
        raise ZooError(
            f"this worker cannot listen on its address {address}: {exc.strerror}.",
            expected="a free port on this machine, as TF_CONFIG's cluster gives this task",
            fix="stop what uses the port (another worker?), or give this task another port "
            "in TF_CONFIG on every worker",
            got=address,
        ) from None
    try:
        yield
    finally:
        server.close()


def _reach(address: str, seconds: float) -> str | None:
    """``None`` if ``address`` accepts a connection, else what went wrong."""
    host, port = _split(address) or ("", 0)
    try:
        with socket.create_connection((host, port), timeout=seconds):
            return None
    except socket.gaierror as exc:
        return f"its host name does not resolve: {exc.strerror}"
    except ConnectionRefusedError:
        return "nothing listens there: connection refused"
    except TimeoutError:
        return f"no answer within {seconds:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)


def _listed(missing: Mapping[str, str]) -> str:
    return "; ".join(f"{address} ({problem})" for address, problem in missing.items())


def _waiting(missing: Mapping[str, str], limit: float) -> str:
    return (
        f"waiting for workers that do not answer yet: {_listed(missing)}; zoo waits up to "
        f"{limit:g} s ({ENV}) for every worker of TF_CONFIG to start"
    )


def _unreachable(missing: Mapping[str, str], limit: float) -> ZooError:
    count = len(missing)
    return ZooError(
        f"{'a worker' if count == 1 else f'{count} workers'} of TF_CONFIG did not answer "
        f"within {limit:g} s: {_listed(missing)}.",
        expected="every address in TF_CONFIG's cluster reachable from here, each worker "
        "started with the same cluster",
        fix=f"start the other workers (within {ENV} seconds of each other), or correct their "
        "addresses in TF_CONFIG; check that no firewall blocks the ports",
        got=", ".join(missing),
    )
