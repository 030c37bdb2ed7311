"""The winner of a study as a recipe file: ``zoo run --recipe runs/tune/STUDY/recipe.toml``.

The file names every setting and every component parameter of the winner's run, not
only those the search drew, so it reproduces the run whatever the defaults of the
machine that reads it (its registry files' ``[run]`` tables). Observers (``track``) are
how a run is watched, not what it trains, and are left out. The file is read back
before it is kept, as ``zoo run`` will read it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.components import KINDS
from zoo.config.registry_file import read_recipe_file
from zoo.config.settings import SETTINGS
from zoo.runconfig import RunConfig
from zoo.storage import atomic

FILE = "recipe.toml"
#: What a TOML comment may not hold: control characters but tab.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
LEFT_OUT = ("track",)


def name_for(study: str) -> str:
    """``tuned_`` and the study's name, as a TOML bare key."""
    return "tuned_" + re.sub(r"[^A-Za-z0-9_-]", "_", study)


def write(folder: Path, study: str, config: RunConfig, note: str) -> Path:
    """Write ``folder/recipe.toml`` for ``config``; ``note`` heads it as a comment."""
    name = name_for(study)
    lines = [f"# {_CONTROL.sub('?', line)}" for line in note.splitlines()]
    lines += ["", f"[recipes.{name}]", f"description = {_value(f'zoo tune winner of {study}')}"]
    data = config.to_dict()
    for kind in KINDS:
        lines.append(f"{kind} = {_value(data[kind]['name'])}")
    for setting in SETTINGS:
        if setting.name not in LEFT_OUT:
            lines.append(f"{setting.name} = {_value(data[setting.name])}")
    lines += ["", f"[recipes.{name}.params]"]
    for kind in KINDS:
        lines.append(f"{kind} = {_table(data[kind]['params'])}")
    path = folder / FILE
    atomic.write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    read_recipe_file(path)  # what zoo run --recipe reads: a writer's bug is seen here
    return path


def _table(params: Mapping[str, Any]) -> str:
    items = ", ".join(f"{_string(k)} = {_value(v)}" for k, v in sorted(params.items()))
    return "{ " + items + " }" if items else "{}"


def _value(value: Any) -> str:
    """A TOML value: strings as JSON writes them (TOML's basic strings take the same
    escapes), numbers, booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _string("" if value is None else str(value))


def _string(text: str) -> str:
    """A TOML basic string: JSON's, but characters beyond ASCII as they are (JSON
    would write an emoji as two surrogate escapes, which TOML refuses) and DEL escaped
    (TOML forbids it raw, JSON leaves it)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
