"""zoo: a plugin-based model zoo for transfer learning on TensorFlow 2 / Keras 3.

The public API. Plugins need :data:`hookimpl`, the component types and the helpers a
plugin calls (weights fetched safely, the cache folders, images read within zoo's
limits, names suggested, warnings printed); scripts need :func:`load_registry`,
:func:`resolve_run`, :func:`build_model`, :func:`run` and :func:`load_model` (a trained
model, in any process).

Names resolve on first use (PEP 562): importing zoo imports neither TensorFlow nor the
training engine, so plugins and ``zoo list`` start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

from zoo._version import __version__

#: Marks a plugin's hook implementations: ``@zoo.hookimpl``.
hookimpl = pluggy.HookimplMarker("zoo")

#: Each public name: the module that defines it, and its name there when it differs.
_EXPORTS: dict[str, tuple[str, str | None]] = {
    # Components and their parts.
    "TOKEN_POOLING": ("zoo.components", None),
    "Backbone": ("zoo.components", None),
    "BuiltBackbone": ("zoo.components", None),
    "BuiltHead": ("zoo.components", None),
    "Dataset": ("zoo.components", None),
    "Head": ("zoo.components", None),
    "Observer": ("zoo.components", None),
    "Splits": ("zoo.components", None),
    "Param": ("zoo.params", None),
    "Download": ("zoo.storage.declared", None),
    # Errors.
    "PluginUnavailable": ("zoo.errors", None),
    "RunFailed": ("zoo.errors", None),
    "ZooError": ("zoo.errors", None),
    # Plugins and registries.
    "Entry": ("zoo.registry", None),
    "LoadOptions": ("zoo.plugins", None),
    "PluginInfo": ("zoo.registry", None),
    "Registry": ("zoo.registry", None),
    "load_registry": ("zoo.plugins", None),
    # Run observers: what they are told (zoo.train.events) and of which run.
    "Callback": ("zoo.train.events", None),
    "EpochEnd": ("zoo.train.events", None),
    "EpochStart": ("zoo.train.events", None),
    "ObservedRun": ("zoo.train.observers", None),
    "RunEnd": ("zoo.train.events", None),
    "RunStart": ("zoo.train.events", None),
    "RunWarning": ("zoo.train.events", None),
    "StageStart": ("zoo.train.events", None),
    # Runs and models.
    "Assembled": ("zoo.model.assemble", None),
    "Choice": ("zoo.runconfig", None),
    "EngineOptions": ("zoo.train.engine", None),
    "Resolved": ("zoo.runconfig", None),
    "RunConfig": ("zoo.runconfig", None),
    "RunResult": ("zoo.train.engine", None),
    "build_model": ("zoo.model.assemble", None),
    "load_model": ("zoo.results.predict", None),
    "resolve_run": ("zoo.runconfig", None),
    "run": ("zoo.train.engine", None),
    # For plugins: messages.
    "closest": ("zoo.errors", None),
    "warning": ("zoo.console", None),
    # For plugins: cache folders, each where its owner's variable puts it.
    "kagglehub_cache": ("zoo.storage.caches", None),
    "keras_cache": ("zoo.storage.caches", None),
    "tfds_data_dir": ("zoo.storage.caches", None),
    "zoo_cache": ("zoo.storage.caches", None),
    "plain_name": ("zoo.storage.confine", "component"),
    # For plugins: weights files, fetched and checked.
    "SetAside": ("zoo.downloads.weights", None),
    "fetch_weights": ("zoo.downloads.weights", "fetch"),
    "keras_download": ("zoo.downloads.weights", None),
    "set_aside_if_damaged": ("zoo.downloads.weights", None),
    "sha256": ("zoo.storage.hashing", "file_sha256"),
    # For plugins: image files, read as untrusted data.
    "IMAGE_DECODER_VERSION": ("zoo.data.images", "DECODER_VERSION"),
    "ImageLimits": ("zoo.data.limits", "Limits"),
    "decode_image_file": ("zoo.data.images", "decode_file"),
    "find_unreadable": ("zoo.data.images", None),
    "image_files": ("zoo.data.files", "find_files"),
    "image_limits": ("zoo.data.limits", "limits"),
}

__all__ = [
    "IMAGE_DECODER_VERSION",
    "TOKEN_POOLING",
    "Assembled",
    "Backbone",
    "BuiltBackbone",
    "BuiltHead",
    "Callback",
    "Choice",
    "Dataset",
    "Download",
    "EngineOptions",
    "Entry",
    "EpochEnd",
    "EpochStart",
    "Head",
    "ImageLimits",
    "LoadOptions",
    "ObservedRun",
    "Observer",
    "Param",
    "PluginInfo",
    "PluginUnavailable",
    "Registry",
    "Resolved",
    "RunConfig",
    "RunEnd",
    "RunFailed",
    "RunResult",
    "RunStart",
    "RunWarning",
    "SetAside",
    "Splits",
    "StageStart",
    "ZooError",
    "__version__",
    "build_model",
    "closest",
    "decode_image_file",
    "fetch_weights",
    "find_unreadable",
    "hookimpl",
    "image_files",
    "image_limits",
    "kagglehub_cache",
    "keras_cache",
    "keras_download",
    "load_model",
    "load_registry",
    "plain_name",
    "resolve_run",
    "run",
    "set_aside_if_damaged",
    "sha256",
    "tfds_data_dir",
    "warning",
    "zoo_cache",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use; else a submodule of zoo."""
    if name in _EXPORTS:
        module, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attribute or name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from zoo.components import (
        TOKEN_POOLING,
        Backbone,
        BuiltBackbone,
        BuiltHead,
        Dataset,
        Head,
        Observer,
        Splits,
    )
    from zoo.console import warning
    from zoo.data.files import find_files as image_files
    from zoo.data.images import DECODER_VERSION as IMAGE_DECODER_VERSION
    from zoo.data.images import decode_file as decode_image_file
    from zoo.data.images import find_unreadable
    from zoo.data.limits import Limits as ImageLimits
    from zoo.data.limits import limits as image_limits
    from zoo.downloads.weights import SetAside, keras_download, set_aside_if_damaged
    from zoo.downloads.weights import fetch as fetch_weights
    from zoo.errors import PluginUnavailable, RunFailed, ZooError, closest
    from zoo.model.assemble import Assembled, build_model
    from zoo.params import Param
    from zoo.plugins import LoadOptions, load_registry
    from zoo.registry import Entry, PluginInfo, Registry
    from zoo.results.predict import load_model
    from zoo.runconfig import Choice, Resolved, RunConfig, resolve_run
    from zoo.storage.caches import kagglehub_cache, keras_cache, tfds_data_dir, zoo_cache
    from zoo.storage.confine import component as plain_name
    from zoo.storage.declared import Download
    from zoo.storage.hashing import file_sha256 as sha256
    from zoo.train.engine import EngineOptions, RunResult, run
    from zoo.train.events import (
        Callback,
        EpochEnd,
        EpochStart,
        RunEnd,
        RunStart,
        RunWarning,
        StageStart,
    )
    from zoo.train.observers import ObservedRun
