"""Where downloads and zoo's own caches live, read from the environment when asked.

Each location follows the variable its owner reads (Keras, TensorFlow Datasets,
kagglehub, zoo), computed at call time, so a changed variable applies at once and none
of those packages is imported: declarations and ``zoo list`` use these without
TensorFlow. Paths are absolute (a relative variable is taken from the working
directory, as its owner takes it). ``tests/test_fetch.py`` checks them against the
packages' own answers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ZooError


def zoo_cache() -> Path:
    """zoo's cache: ``$ZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``."""
    given = os.environ.get("ZOO_CACHE_DIR")
    if given:
        return _absolute(given)
    return _absolute(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zoo"


def keras_home() -> Path:
    """Keras's home: ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras`` if ``~`` is read-only)."""
    if "KERAS_HOME" in os.environ:
        return _absolute(os.environ["KERAS_HOME"])
    base = Path.home()
    return (base if os.access(base, os.W_OK) else Path("/tmp")) / ".keras"


def keras_cache() -> Path:
    """Where Keras keeps downloaded model weights: ``keras_home() / "models"``."""
    return keras_home() / "models"


def tfds_data_dir() -> Path:
    """TensorFlow Datasets' data directory: ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
    return _absolute(os.environ.get("TFDS_DATA_DIR") or Path.home() / "tensorflow_datasets")


def kagglehub_cache() -> Path:
    """kagglehub's cache, where KerasHub presets go: ``$KAGGLEHUB_CACHE``, else
    ``~/.cache/kagglehub``."""
    return _absolute(os.environ.get("KAGGLEHUB_CACHE") or Path.home() / ".cache" / "kagglehub")


def _absolute(path: str | Path) -> Path:
    return Path(path).expanduser().absolute()


def existing_folder(path: Path) -> Path:
    """``path``, or its nearest parent that exists: where it would be made."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@dataclass(frozen=True)
class Cache:
    """One cache ``zoo doctor`` reports: its name, folder, and the variable that moves it.

    Args:
        read_only: A folder that cannot be written still serves: what was fetched or
            prepared into it before is read (weights, TFDS data, presets).
    """

    name: str
    path: Path
    variable: str
    read_only: bool = False

    def problem(self) -> str | None:
        """Why the folder cannot serve (it is a file, lies under one, or cannot be
        written where that matters); ``None`` when it can."""
        existing = existing_folder(self.path)
        if not existing.is_dir():
            under = "" if existing == self.path else f"lies under {existing}, which "
            return f"{self.path} {under}is a file, not a folder"
        if not os.access(existing, os.W_OK | os.X_OK) and not (
            self.read_only and existing == self.path
        ):
            return f"{self.path} cannot be written" + (
                "" if existing == self.path else f" (nor {existing}, where it would be made)"
            )
        return None


def known() -> list[Cache]:
    """zoo's caches and those of the libraries it downloads through."""
    zoo_variable = (
        "XDG_CACHE_HOME"
        if _set("XDG_CACHE_HOME") and not _set("ZOO_CACHE_DIR")
        else ("ZOO_CACHE_DIR")
    )
    return [
        Cache("features", zoo_cache() / "features", zoo_variable),
        Cache("image checks", zoo_cache() / "image_folder", zoo_variable),
        Cache("keras models", keras_cache(), "KERAS_HOME", read_only=True),
        Cache("tfds data", tfds_data_dir(), "TFDS_DATA_DIR", read_only=True),
        Cache("kagglehub", kagglehub_cache(), "KAGGLEHUB_CACHE", read_only=True),
    ]


def check() -> None:
    """Refuse a cache variable that points where its cache cannot be: at a file, under
    one, or at a folder that cannot be written (one of prepared downloads may be
    read-only). Commands call it before loading plugins, so no plugin is blamed.

    Raises:
        ZooError: naming the variable, its value and why.
    """
    for cache in known():
        problem = cache.problem() if _set(cache.variable) else None
        if problem:
            raise ZooError(
                f"${cache.variable} points where the {cache.name} cache cannot be: {problem}.",
                expected=f"${cache.variable} naming a folder zoo can create or write",
                fix=f"point ${cache.variable} at such a folder, or unset it for the default",
                got=os.environ[cache.variable],
            )


def _set(variable: str) -> bool:
    return bool(os.environ.get(variable))
