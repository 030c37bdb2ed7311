"""The other side of :mod:`zoo.testing.roundtrip`: a new process that loads the saved models.

``python -m zoo.testing.reload SPEC`` loads the plugin as zoo loads plugins, loads each
model with :func:`zoo.results.saving.load_saved` and predicts the images saved beside it.
It imports what ``zoo predict`` imports and the plugin's registration, nothing of the
side that built and saved the models, so a model that loads here loads after ``zoo run``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.plugins import LoadOptions, load_registry
from zoo.results.saving import load_saved
from zoo.runtime import loader


@dataclass(frozen=True)
class Saved:
    """One model saved for the round trip, and where its images and answers are."""

    label: str
    model: str
    images: str
    expected: str
    loaded: str


def main(argv: Sequence[str]) -> int:
    """The new process: load the plugin, then each model, and predict its images."""
    spec = json.loads(Path(argv[0]).read_text())
    errors: dict[str, str | None] = {}
    # Quiet, so that the last lines of stderr, shown if this process fails, say why.
    with loader.quiet():
        registry = _load_plugin(spec["plugin"])
        for saved in (Saved(**s) for s in spec["models"]):
            try:
                model = load_saved(Path(saved.model), registry).model
                np.save(saved.loaded, np.asarray(model.predict_on_batch(np.load(saved.images))))
                errors[saved.label] = None
            except Exception as exc:
                errors[saved.label] = one_line(exc)
    Path(spec["results"]).write_text(json.dumps(errors))
    return 0


def _load_plugin(loader: Mapping[str, Any]) -> Any:
    if "name" in loader:
        return load_registry()
    file = Path(loader["file"])
    package = [str(file.parent)] if file.name == "__init__.py" else None
    spec = importlib.util.spec_from_file_location(
        loader["module"], file, submodule_search_locations=package
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader["module"]] = module
    spec.loader.exec_module(module)
    return load_registry(LoadOptions(builtins_only=True, extra=[module]))


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and message."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
