"""``python -m zoo`` is the ``zoo`` command."""

import sys

# `python -m` puts the current folder first on the import path, and the `zoo` command
# does not: take it off (as `python -P` would), so that files in the folder zoo is run
# from (a run directory someone sent, a planted *.dist-info) are never imported as code.
if not sys.flags.safe_path and sys.path:
    del sys.path[0]

from zoo.cli import script

script()
