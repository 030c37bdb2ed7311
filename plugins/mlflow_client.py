"""The MLflow observer's plumbing: its background queue, and the small, careful helpers
around MLflow's client (the probe, the retries capped, URIs shown without passwords, the
run file read as data). Part of the built-in plugin ``mlflow_tracking``.
"""

from __future__ import annotations

import json
import os
import queue
import stat
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The most bytes of the run file that are read: a bigger one is not the file zoo wrote.
RUN_FILE_LIMIT = 4096


class Queue:
    """MLflow calls run in order on one background thread; the first that fails stops
    the rest, and ``failure`` says why."""

    def __init__(self) -> None:
        self.calls: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.failure: str | None = None
        self.thread = threading.Thread(target=self._work, name="zoo-mlflow", daemon=True)
        self.thread.start()

    def put(self, call: Callable[[], None]) -> None:
        self.calls.put(call)

    def close(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the calls left; ``False``: they did not end."""
        self.calls.put(None)
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def _work(self) -> None:
        while (call := self.calls.get()) is not None:
            if self.failure is not None:
                continue
            try:
                call()
            except Exception as exc:  # the network, the server, the store: said once
                self.failure = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def read_small(path: Path) -> Any:
    """The JSON in ``path`` if it is a small regular file, else ``None`` (a FIFO or a
    device would block or never end)."""
    try:
        found = path.stat()
        if stat.S_ISREG(found.st_mode) and found.st_size <= RUN_FILE_LIMIT:
            return json.loads(path.read_bytes())
    except (OSError, ValueError):
        pass
    return None


def quiet_client() -> None:
    """MLflow's HTTP client retries for minutes by default: a few seconds here, unless
    the user set its variables. It would print the run's URL on stdout, which is
    zoo's data (``--json``): never."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"


def shown(uri: str) -> str:
    """``uri`` without a password, for the console and metrics.json."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


def probe(uri: str, timeout: float) -> None:
    """Raise ``ConnectionError`` when an HTTP tracking server does not answer in time."""
    if not uri.startswith(("http://", "https://")):
        return
    parts = urllib.parse.urlsplit(uri)  # /health needs no login, urllib takes none in a URL
    health = parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment="")
    try:
        with urllib.request.urlopen(f"{health.geturl().rstrip('/')}/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answers (a proxy or an older server without /health)
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"no answer from {health.netloc} in {timeout:g} s ({exc})") from None
