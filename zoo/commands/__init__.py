"""One module per ``zoo`` command. Each has ``add(subparsers, common)``.

``MODULES`` is the order they appear in ``zoo --help``.
"""

from __future__ import annotations

MODULES = ("listing", "info", "run")
