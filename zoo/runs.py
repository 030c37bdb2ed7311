"""Run directories: created fresh, written atomically, read back by later commands.

A run directory holds::

    config.json     the resolved configuration and the command line
    metrics.json    per-epoch history, test metrics, parameter counts, timings,
                    library versions, seed, dataset facts, status
    model.keras     the trained model (backbone + head, preprocessing included)
    logs/           TensorBoard logs (train/ and validation/)
    checkpoints/    the last finished epoch, for ``zoo run --resume``
    best/           the best epoch's weights so far (``--keep best``)

Later commands (``zoo compare``, ``predict``, ``export``) read runs with :func:`read_run`.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import math
import os
import platform
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from zoo.errors import ZooError

CONFIG = "config.json"
METRICS = "metrics.json"
MODEL = "model.keras"
LOGS = "logs"

#: A run's ``status`` in metrics.json: ``running`` after each epoch (or killed),
#: then how it ended.
RunStatus = Literal["running", "completed", "failed", "interrupted"]
#: The training stages, as history rows and checkpoints name them: the head (on a
#: frozen backbone, or on cached features), then optionally the fine-tuning stage.
Stage = Literal["head", "fine_tune"]


def new_run_dir(root: Path, name: str) -> Path:
    """Create and return ``root/<timestamp>-<name>``, never reusing an existing one."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZooError(
            f"cannot create the output directory {root}: {exc.strerror}.",
            expected="a directory zoo can write to",
            fix="pass another --output DIR",
            got=str(root),
        ) from None
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}"
    for attempt in range(1, 1000):
        candidate = root / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise ZooError(f"could not find a free run directory name under {root}.", got=base)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON so that readers see the old file or the new one, never half."""
    text = json.dumps(data, indent=2, default=_jsonable)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ZooError(
            f"{path} does not exist.",
            expected="a run directory written by `zoo run`",
            fix="pass the directory `zoo run` printed at its end",
            got=str(path.parent),
        ) from None
    except json.JSONDecodeError as exc:
        raise ZooError(f"{path} is not valid JSON: {exc}.", got=str(path)) from None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy and TensorFlow scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def library_versions(packages: Iterable[str] = ()) -> dict[str, str]:
    """Python, zoo, TensorFlow and friends, and the given plugin packages."""
    wanted = ["zoo", "tensorflow", "keras", "tensorflow-datasets", "numpy", "pluggy", *packages]
    versions = {"python": platform.python_version()}
    for name in dict.fromkeys(wanted):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def history_rows(history: Mapping[str, list[float]]) -> list[dict[str, float]]:
    """``{"loss": [a, b]}`` as ``[{"epoch": 1, "loss": a}, {"epoch": 2, "loss": b}]``."""
    epochs = max((len(v) for v in history.values()), default=0)
    return [
        {"epoch": i + 1, **{k: float(v[i]) for k, v in history.items() if i < len(v)}}
        for i in range(epochs)
    ]


@dataclass(frozen=True)
class RunRecord:
    """One run directory as recorded: its configuration and its metrics."""

    path: Path
    config: Mapping[str, Any]
    metrics: Mapping[str, Any]

    @property
    def status(self) -> RunStatus | Literal["unknown"]:
        """As recorded; ``unknown`` before the first metrics.json is written."""
        return self.metrics.get("status") or "unknown"

    @property
    def history(self) -> list[dict[str, Any]]:
        """Per-epoch rows, one per epoch in order; a repeated epoch keeps its last row."""
        rows = {row["epoch"]: row for row in self.metrics.get("history") or [] if "epoch" in row}
        return [rows[epoch] for epoch in sorted(rows)]

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """Epochs and values of one metric, skipping epochs that lack it."""
        pairs = [(row["epoch"], row[key]) for row in self.history if finite_number(row.get(key))]
        return [e for e, _ in pairs], [v for _, v in pairs]

    def stage_starts(self) -> dict[Stage, int]:
        """The first epoch of each training stage (``head``, ``fine_tune``), if recorded."""
        starts: dict[Stage, int] = {}
        for row in self.history:
            if row.get("stage"):
                starts.setdefault(row["stage"], row["epoch"])
        return starts


def read_run(path: Path) -> RunRecord:
    """The run at ``path``; a run without ``metrics.json`` yet has status ``unknown``.

    Raises:
        ZooError: ``path`` is not a run directory (no readable ``config.json``).
    """
    if not path.is_dir():
        raise ZooError(
            f"{path} is not a directory.",
            expected="a run directory written by `zoo run`",
            fix="pass the directory `zoo run` printed at its end (ls runs/)",
            got=str(path),
        )
    config = read_json(path / CONFIG)
    metrics_file = path / METRICS
    metrics = read_json(metrics_file) if metrics_file.exists() else {}
    return RunRecord(path=path, config=config, metrics=metrics)


def finite_number(value: Any) -> bool:
    """``value`` is an int or float (not a bool), and finite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
