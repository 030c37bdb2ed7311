"""zoo's built-in plugins, imported by module name: ``zoo.builtins.shapes``, ...

They are ordinary plugins, using only zoo's public API, and zoo's registry.toml names
them. Their source is the repository's top-level ``plugins/`` folder: a wheel ships
those files inside this package (``force-include`` in pyproject.toml), and in a checkout
or an editable install, where this package holds none, its path reaches that folder.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
#: The checkout this package lies in, if it does: its registry.toml is zoo's own.
_CHECKOUT = _HERE.parents[1]

if not (_HERE / "registry.toml").is_file() and (_CHECKOUT / "registry.toml").is_file():
    __path__.append(str(_CHECKOUT / "plugins"))
