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


@dataclass(frozen=True)
class Cache:
    """One cache ``zoo doctor`` reports: its name, folder, and the variable that moves it."""

    name: str
    path: Path
    variable: str


def known() -> list[Cache]:
    """zoo's caches and those of the libraries it downloads through."""
    return [
        Cache("features", zoo_cache() / "features", "ZOO_CACHE_DIR"),
        Cache("image checks", zoo_cache() / "image_folder", "ZOO_CACHE_DIR"),
        Cache("keras models", keras_cache(), "KERAS_HOME"),
        Cache("tfds data", tfds_data_dir(), "TFDS_DATA_DIR"),
        Cache("kagglehub", kagglehub_cache(), "KAGGLEHUB_CACHE"),
    ]
