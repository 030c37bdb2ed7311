"""Modules that a library imports as it loads but zoo rarely uses: imported on first use.

Keras imports ``matplotlib.pyplot`` (and ``matplotlib.patches``) as it loads, for its
image-gallery plots, which zoo never draws. That import is a tenth of
``import tensorflow``: 0.19 s of 2.1 s on two cores (six runs each way). zoo draws its
own figures with ``matplotlib.figure`` and imports it only then (``zoo compare``, the
confusion matrix).

Within :func:`deferred`, importing such a package or its submodules gives stand-ins
(``plt = <deferred matplotlib.pyplot>``), and the stand-ins leave ``sys.modules`` when
the block ends, so any later import gets the real module. The first attribute read
from a stand-in imports its real module and answers from it: Keras's galleries work as
before, once matplotlib has loaded. Code that uses the package while the block is still
open (not just imports it) ends the deferral of that package there and then. A package
that is not installed gets no stand-in, so a library that checks for it still finds it
missing.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any


class Deferred(types.ModuleType):
    """Stands for the module of its name until an attribute is read from it."""

    def __init__(self, name: str, finder: _StandIns) -> None:
        super().__init__(name, f"{name}, imported on first use (zoo._deferred)")
        self.__dict__["_zoo_finder"] = finder

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)  # the import system probing: not a use
        finder: _StandIns = self.__dict__["_zoo_finder"]
        if sys.modules.get(self.__name__) is self:  # still standing in
            if finder.is_submodule(self.__name__, attribute):
                raise AttributeError(attribute)  # `from package import sub`: its stand-in
            finder.give_up(self.__name__)
        return getattr(importlib.import_module(self.__name__), attribute)

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(self.__name__))


class _StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds a stand-in for each of ``packages`` and their submodules."""

    def __init__(self, packages: Sequence[str]) -> None:
        self.packages = list(packages)
        self.made: list[Deferred] = []

    def _package(self, fullname: str) -> str | None:
        top = fullname.partition(".")[0]
        return top if top in self.packages else None

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if self._package(fullname) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Deferred:
        module = Deferred(spec.name, self)
        self.made.append(module)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass

    @staticmethod
    def is_submodule(name: str, attribute: str) -> bool:
        """``name.attribute`` is a module on disk (found without importing ``name``)."""
        spec = importlib.machinery.PathFinder.find_spec(name.partition(".")[0])
        for part in [*name.split(".")[1:], attribute]:
            places = spec.submodule_search_locations if spec is not None else None
            if not places:
                return False
            spec = importlib.machinery.PathFinder.find_spec(part, list(places))
        return spec is not None

    def give_up(self, name: str) -> None:
        """Stop deferring ``name``'s package: something uses it while the block is open."""
        package = self._package(name)
        if package is None:
            return
        self.packages.remove(package)
        self.remove(lambda module: module.__name__.partition(".")[0] == package)

    def remove(self, which: Callable[[Deferred], bool] = lambda module: True) -> None:
        """Take the stand-ins that ``which`` picks out of ``sys.modules``."""
        for module in self.made:
            if which(module) and sys.modules.get(module.__name__) is module:
                del sys.modules[module.__name__]


@contextlib.contextmanager
def deferred(packages: tuple[str, ...]) -> Iterator[None]:
    """Within the block, importing ``packages`` (and their submodules) gives stand-ins
    that import the real module on first use; afterwards imports are as always.

    A package already imported, or not installed, is left alone.
    """
    wanted = [
        name
        for name in packages
        if name not in sys.modules and importlib.util.find_spec(name) is not None
    ]
    finder = _StandIns(wanted)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
        finder.remove()
