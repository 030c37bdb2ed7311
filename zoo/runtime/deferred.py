"""Modules that a library imports as it loads but zoo rarely uses: imported on first use.

Keras imports ``matplotlib.pyplot`` (and ``matplotlib.patches``) as it loads, for its
image-gallery plots, which zoo never draws, and the import is a sizeable part of
loading TensorFlow. zoo draws its own figures with ``matplotlib.figure`` and imports it
only then (``zoo compare``, the confusion matrix). The patch that uses this is
:func:`zoo.runtime.patches.matplotlib_deferred`.

Within :func:`deferred`, importing such a package or its submodules gives stand-ins
(``plt = <deferred matplotlib.pyplot>``), and the stand-ins leave ``sys.modules`` when
the block ends, so any later import gets the real module. The first read of an
attribute the stand-in does not hold itself imports its real module and answers from
it: Keras's galleries work as before, once matplotlib has loaded. A stand-in holds
only what every module holds (``__name__``, ``__doc__``, ``__spec__``, ``__loader__``,
``__package__``, and ``__path__`` for a package); ``__file__``, ``__version__`` and
the rest come from the real module.

Code that uses the package while the block is still open (reads an attribute that is
not a submodule, or lists it with ``dir``) ends its deferral there and then and gets
the real module. A package that is not installed, or a submodule that does not exist,
gets no stand-in, so its import fails as always; a submodule that exists but fails as
it runs fails at its first use instead. ``from package import name`` gives the
submodule ``name`` even where the package's ``__init__`` binds ``name`` to something
else (matplotlib does not).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any


class Deferred(types.ModuleType):
    """Stands for the module of its name until an attribute is read from it."""

    def __init__(self, name: str, finder: _StandIns) -> None:
        super().__init__(name, f"{name}, imported on first use (zoo.runtime.deferred)")
        self.__dict__["_zoo_finder"] = finder

    def __getattr__(self, attribute: str) -> Any:
        if self.__dict__["_zoo_finder"].defers(self.__name__):  # still standing in
            if attribute.startswith("__"):
                raise AttributeError(attribute)  # the import system probing: not a use
            if _StandIns.spec_of(f"{self.__name__}.{attribute}") is not None:
                raise AttributeError(attribute)  # `from package import sub`: its stand-in
        return getattr(self._real(), attribute)

    def __dir__(self) -> list[str]:
        return dir(self._real())

    def _real(self) -> types.ModuleType:
        """The real module, imported now; if the stand-in still stands in, its package
        is not deferred any more."""
        finder: _StandIns = self.__dict__["_zoo_finder"]
        if finder.defers(self.__name__):
            finder.give_up(self.__name__)
        return importlib.import_module(self.__name__)


class _StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds a stand-in for each of ``packages`` and their submodules."""

    def __init__(self, packages: Sequence[str]) -> None:
        self.packages = list(packages)
        self.made: list[Deferred] = []
        self._lock = threading.Lock()

    def defers(self, fullname: str) -> bool:
        """Importing ``fullname`` gives a stand-in (the block is open, the package in use)."""
        return fullname.partition(".")[0] in self.packages

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not self.defers(fullname):
            return None
        real = self.spec_of(fullname)
        if real is None:
            return None  # no such module: its import fails as it would
        package = real.submodule_search_locations is not None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=package)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Deferred:
        module = Deferred(spec.name, self)
        self.made.append(module)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass

    @staticmethod
    def spec_of(fullname: str) -> importlib.machinery.ModuleSpec | None:
        """Where the module ``fullname`` is on disk, found without importing anything."""
        top, *parts = fullname.split(".")
        spec = importlib.machinery.PathFinder.find_spec(top)
        for part in parts:
            places = spec.submodule_search_locations if spec is not None else None
            if not places:
                return None
            spec = importlib.machinery.PathFinder.find_spec(part, list(places))
        return spec

    def give_up(self, name: str) -> None:
        """Stop deferring ``name``'s package: something uses it while the block is open."""
        package = name.partition(".")[0]
        with self._lock:  # two threads may use it at once
            if package in self.packages:
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
        finder.packages.clear()  # the stand-ins the library keeps now import on use
        finder.remove()
