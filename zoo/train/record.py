"""The run record, metrics.json: what a run did, with what, where, and how long it took."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from zoo.runconfig import Resolved
from zoo.storage import disk_full, runs
from zoo.storage.runs import RunStatus, Stage

#: What metrics.json's ``timings`` measure; each stage's training is one phase.
Phase = Literal["data", "build", "extract", "train", "fine_tune", "evaluate", "save"]
#: The phase of each stage's training, named as runs have always recorded it.
STAGE_PHASE: Mapping[Stage, Phase] = {"head": "train", "fine_tune": "fine_tune"}


class Timer:
    """Seconds per :data:`Phase`, added up over a run (and its resumes)."""

    def __init__(self, seconds: Mapping[str, float] | None = None) -> None:
        self.seconds: dict[str, float] = dict(seconds or {})

    @contextmanager
    def phase(self, name: Phase) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[name] = round(self.seconds.get(name, 0.0) + elapsed, 3)


class Record:
    """metrics.json of one run, kept up to date after every epoch (chief only writes).

    Args:
        run_dir: The run directory; ``None`` on a worker that is not the chief.
        resolved: The run's configuration and components.
        previous: The record of the interrupted run this one resumes, if any.
        timer: This process's timings so far; they replace the previous record's
            phases of the same name (setting up is timed anew), and later phases add up.
    """

    def __init__(
        self,
        run_dir: Path | None,
        resolved: Resolved,
        previous: Mapping[str, Any] | None = None,
        timer: Timer | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.data: dict[str, Any] = dict(previous or {})
        self.timer = timer or Timer()
        self.timer.seconds = {**self.data.get("timings", {}), **self.timer.seconds}
        self.data.setdefault("history", [])
        self.data.setdefault("test", {})
        self.data.setdefault("resumed", [])
        self.data["seed"] = resolved.config.seed
        entries = (resolved.dataset, resolved.backbone, resolved.head)
        plugin_packages = sorted({e.plugin.package for e in entries} - {"zoo", "local"})
        self.data["versions"] = runs.library_versions(plugin_packages)
        self.data["plugins"] = {
            e.kind: {
                "plugin": e.plugin.name,
                "package": e.plugin.package,
                "version": e.plugin.version,
            }
            for e in entries
        }

    def update(self, **fields: Any) -> None:
        self.data.update(fields)

    def write(self, status: RunStatus, error: str | None = None) -> dict[str, Any]:
        self.data["status"] = status
        self.data["error"] = error
        self.data["timings"] = dict(self.timer.seconds)
        if self.run_dir is not None:
            path = self.run_dir / runs.METRICS
            with disk_full.writing(
                "the run record", path, lambda: len(json.dumps(self.data, default=str))
            ):
                runs.write_json(path, self.data)
        return self.data
