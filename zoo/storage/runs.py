"""Run directories: created fresh, written whole, read back by later commands.

A run directory holds::

    config.json     the resolved configuration and the command line
    metrics.json    per-epoch history, test metrics, parameter counts, timings,
                    library versions, seed, dataset facts, status
    model.keras     the trained model (backbone + head, preprocessing included)
    logs/           TensorBoard logs (train/ and validation/)
    checkpoints/    the two last finished epochs, for ``zoo run --resume``
    best/           the best epoch's weights so far (``--keep best``)
    train.lock      who trains the run, locked while it does (empty once none does)

Later commands (``zoo compare``, ``predict``, ``export``) read runs with :func:`read_run`.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import math
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from zoo.errors import ZooError
from zoo.storage import atomic
from zoo.storage.os_errors import explained

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
    with explained(
        "create the output directory",
        root,
        expected="a directory zoo can write to",
        fix="pass another --output DIR",
    ):
        root.mkdir(parents=True, exist_ok=True)
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
    atomic.write_bytes(path, (text + "\n").encode("utf-8"))


def json_problem(path: Path, kind: type = dict) -> tuple[Any, str | None]:
    """The JSON in ``path`` and ``None``, or ``None`` and what is wrong with the file:
    ``is missing``, ``is not valid JSON (...)``, ``holds no JSON object``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "is missing"
    except IsADirectoryError:
        return None, "is a folder, not a file"
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"is not valid JSON ({_where(exc)}): it was cut short or overwritten"
    if not isinstance(data, kind):
        return None, f"holds no JSON {'object' if kind is dict else kind.__name__}"
    return data, None


def _where(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
    return str(exc)


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


#: What each file of a run directory is for, as messages name it.
_PURPOSE = {
    CONFIG: "the run's configuration (components, parameters, settings)",
    METRICS: "the run's record (history, test metrics, status)",
}
#: How to get each file back.
RESTORE = {
    CONFIG: "restore config.json from a copy of the run directory: no other file of the "
    "run holds its configuration",
    METRICS: "restore metrics.json from a copy of the run directory; for a run that did "
    "not complete, `zoo run --resume RUN` writes it again from its checkpoint",
}


@dataclass(frozen=True)
class RunRecord:
    """One run directory as recorded: its configuration and its metrics.

    A damaged ``config.json`` or ``metrics.json`` reads as empty, and ``damage`` says
    what is wrong with it; commands that need the file call :meth:`require`.
    """

    path: Path
    config: Mapping[str, Any]
    metrics: Mapping[str, Any]
    damage: Mapping[str, str] = field(default_factory=dict)

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

    def damage_note(self, name: str) -> str | None:
        """``runs/x/metrics.json is not valid JSON (...)``, if that file is damaged."""
        problem = self.damage.get(name)
        return f"{self.path / name} {problem}" if problem else None

    def require(self, name: str, needed_for: str, fix: str | None = None) -> None:
        """Check that ``name`` (``config.json`` or ``metrics.json``) is intact.

        Raises:
            ZooError: it is damaged or missing, naming the file, what it holds and
                ``needed_for``, and how to get it back.
        """
        note = self.damage_note(name)
        if note is None:
            return
        raise ZooError(
            f"the run directory {self.path} is damaged: {note}.",
            expected=f"{name} as `zoo run` wrote it: {_PURPOSE[name]}, which {needed_for}",
            fix=fix or RESTORE[name],
            got=str(self.path / name),
        )


def read_run(path: Path) -> RunRecord:
    """The run at ``path``, as far as it can be read (see :attr:`RunRecord.damage`).

    A run without ``metrics.json`` yet (still starting, or killed before its first
    epoch ended) has status ``unknown``; one that saved its model had it, so it is
    damage.

    Raises:
        ZooError: ``path`` is not a run directory: not a folder, or none of
            ``config.json``, ``metrics.json`` and ``model.keras`` is there.
    """
    if not path.is_dir() or not any((path / name).exists() for name in (CONFIG, METRICS, MODEL)):
        what = "is not a directory" if not path.is_dir() else "holds no run"
        raise ZooError(
            f"{path} {what}.",
            expected="a run directory written by `zoo run` (config.json, metrics.json, "
            "model.keras)",
            fix="pass the directory `zoo run` printed at its end (ls runs/)",
            got=str(path),
        )
    damage: dict[str, str] = {}
    config, problem = json_problem(path / CONFIG)
    problem = problem or (config_problem(config) if config is not None else None)
    if problem:
        config, damage[CONFIG] = None, problem
    metrics = None
    if (path / METRICS).exists():
        metrics, problem = json_problem(path / METRICS)
        if metrics is not None and not isinstance(metrics.get("history", []), list):
            problem = "holds a history that is not a list of epochs"
        if problem:
            metrics, damage[METRICS] = None, problem
    elif (path / MODEL).exists():  # written before the model, at the end of every epoch
        damage[METRICS] = "is missing, though the run saved its model"
    return RunRecord(path, config or {}, metrics or {}, damage)


def config_problem(config: Mapping[str, Any]) -> str | None:
    """What is wrong with a ``config.json`` that is valid JSON, if anything."""
    for kind in ("dataset", "backbone", "head"):
        choice = config.get(kind)
        if not isinstance(choice, dict) or not isinstance(choice.get("name"), str):
            return f"names no {kind} (the file was edited or overwritten)"
    return None


def finite_number(value: Any) -> bool:
    """``value`` is an int or float (not a bool), and finite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
