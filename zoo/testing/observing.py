"""zoo.testing's check of a run observer: built as ``zoo run --track`` builds it, then
told a whole tiny run (the built-in ``shapes`` dataset, ``small_cnn`` and ``gap_sigmoid``,
one epoch), which must end with the observer still listening.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from zoo.errors import describe_error
from zoo.plugins import load_registry
from zoo.registry import Entry
from zoo.runconfig import Tracked, resolve_run
from zoo.testing.contracts import Found, Settings
from zoo.train.events import Callback

#: The tiny run the observer is told: 40 images, one epoch.
RUN = ("shapes", "small_cnn", "gap_sigmoid")
SETS = ("dataset.num_images=40",)


def check_observer(entry: Entry, values: dict[str, Any], found: Found, settings: Settings) -> None:
    """Run a tiny training with ``entry`` observing it; file what it broke.

    Problems: its builder raised, or it raised while the run went on (zoo reports it
    and goes on, which here is a broken promise), ``recorded()`` included.
    """
    from zoo.train.engine import run

    size = max(settings.image_size, 8)
    registry = load_registry()
    resolved = resolve_run(registry, RUN, settings={"epochs": 1, "image_size": size}, sets=SETS)
    resolved = dataclasses.replace(resolved, observers=(Tracked(entry, values),))
    with tempfile.TemporaryDirectory(prefix="zoo-observer-") as folder:
        try:
            result = run(
                resolved, output=Path(folder), command=["zoo.testing"], reporter=Callback()
            )
        except Exception as exc:
            found("build", f"the run it observed failed: {describe_error(exc)}")
            return
        if result.run_dir is None:
            found("run", "the run it observed left no run directory")
            return
        record = json.loads((result.run_dir / "metrics.json").read_text(encoding="utf-8"))
    for warning in record.get("warnings", []):
        if warning.get("code") == "observer_failed":
            found("events", warning.get("message", ""))
