"""Modules that a library imports as it loads but zoo rarely uses: imported on first use.

Keras imports ``matplotlib.pyplot`` (and ``matplotlib.patches``) as it loads, for its
image-gallery plots, which zoo never draws. That import is a fifth of
``import tensorflow``: 0.42 s of 2.0 s on two cores. zoo draws its own figures with
``matplotlib.figure`` and imports it only then (``zoo compare``, the confusion matrix).

:func:`deferred` puts a stand-in for each such package in ``sys.modules`` while a
library loads; the library keeps the stand-ins (``plt = <deferred matplotlib.pyplot>``)
and the stand-ins leave ``sys.modules`` when the block ends, so any later import gets
the real module. A stand-in imports its real module on first attribute read and answers
from it: Keras's galleries work as before, once matplotlib has loaded. A package that is
not installed gets no stand-in, so a library that checks for it still finds it missing.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator, Sequence
from typing import Any


class Deferred(types.ModuleType):
    """Stands for the module of its name: the first attribute read once it has left
    ``sys.modules`` imports the real module and answers from it."""

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__") or sys.modules.get(self.__name__) is self:
            # The import system probing, or importing a submodule: not a use.
            raise AttributeError(attribute)
        return getattr(importlib.import_module(self.__name__), attribute)

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(self.__name__))


class _StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds a stand-in for each of ``packages`` and their submodules."""

    def __init__(self, packages: tuple[str, ...]) -> None:
        self.packages = packages
        self.made: list[Deferred] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not any(fullname == p or fullname.startswith(f"{p}.") for p in self.packages):
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Deferred:
        module = Deferred(spec.name, f"{spec.name}, imported on first use (zoo._deferred)")
        self.made.append(module)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


@contextlib.contextmanager
def deferred(packages: tuple[str, ...]) -> Iterator[None]:
    """Within the block, importing ``packages`` (and their submodules) gives stand-ins
    that import the real module on first use; afterwards imports are as always.

    A package already imported, or not installed, is left alone.
    """
    wanted = tuple(
        name
        for name in packages
        if name not in sys.modules and importlib.util.find_spec(name) is not None
    )
    finder = _StandIns(wanted)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
        for module in finder.made:
            if sys.modules.get(module.__name__) is module:
                del sys.modules[module.__name__]
