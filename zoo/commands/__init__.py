"""One module per ``zoo`` command.

Every public module here is a command: it defines ``add(subparsers, common)`` and
``POSITION``, an integer that orders the commands in ``zoo --help``.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def command_modules() -> list[ModuleType]:
    """Every command module, in ``zoo --help`` order."""
    modules = [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_")
    ]
    return sorted(modules, key=lambda m: (m.POSITION, m.__name__))
