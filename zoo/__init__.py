"""zoo: a plugin-based model zoo for transfer learning on TensorFlow 2 / Keras 3.

The public API. Plugins need :data:`hookimpl` and the component types; scripts need
:func:`load_registry`, :func:`resolve_run`, :func:`build_model`, :func:`run` and
:func:`load_model` (a trained model, in any process).
Importing zoo does not import TensorFlow.
"""

from __future__ import annotations

import pluggy

from zoo._version import __version__

#: Marks a plugin's hook implementations: ``@zoo.hookimpl``.
hookimpl = pluggy.HookimplMarker("zoo")

from zoo.components import (  # noqa: E402
    TOKEN_POOLING,
    Backbone,
    BuiltBackbone,
    BuiltHead,
    Dataset,
    Head,
    Splits,
)
from zoo.errors import PluginUnavailable, RunFailed, ZooError  # noqa: E402
from zoo.model.assemble import Assembled, build_model  # noqa: E402
from zoo.params import Param  # noqa: E402
from zoo.plugins import LoadOptions, load_registry  # noqa: E402
from zoo.registry import Entry, PluginInfo, Registry  # noqa: E402
from zoo.results.predict import load_model  # noqa: E402
from zoo.runconfig import Choice, Resolved, RunConfig, resolve_run  # noqa: E402
from zoo.storage.declared import Download  # noqa: E402
from zoo.train.engine import EngineOptions, RunResult, run  # noqa: E402

__all__ = [
    "TOKEN_POOLING",
    "Assembled",
    "Backbone",
    "BuiltBackbone",
    "BuiltHead",
    "Choice",
    "Dataset",
    "Download",
    "EngineOptions",
    "Entry",
    "Head",
    "LoadOptions",
    "Param",
    "PluginInfo",
    "PluginUnavailable",
    "Registry",
    "Resolved",
    "RunConfig",
    "RunFailed",
    "RunResult",
    "Splits",
    "ZooError",
    "__version__",
    "build_model",
    "hookimpl",
    "load_model",
    "load_registry",
    "resolve_run",
    "run",
]
