"""Python's garbage collector, tuned for a process that is zoo's alone: the ``zoo`` command.

TensorFlow and Keras create about 300,000 objects that Python's cyclic garbage
collector tracks and that live as long as the process. Each full collection walks
them all (about 0.2 s on two cores; a frozen-backbone run of ResNet50 made two), and the
interpreter runs one more as it exits (0.75 s after ``import tensorflow`` alone).

In the ``zoo`` command's own process (:func:`zoo.cli.script`), :func:`freeze` takes
what exists out of the collector's passes (``gc.freeze``) twice: once TensorFlow is
loaded, and once the command has returned, every file written and closed, so the exit
skips that last walk. A program that calls zoo's API keeps its collector as it is:
freezing would keep its garbage of that moment for good.

Every process, a program using zoo's API too, imports TensorFlow inside
:func:`collection_paused`. Importing it creates those objects at a rate that starts a
full collection every few tenths of a second, each walking all that exist so far: the
import took 1.8 s with the collector on and 1.3 s with it paused (two cores). Pausing
only delays what a collection would free: in a program using zoo's API, the import's
cyclic garbage (about 14,000 objects) goes in the first pass after the collector
resumes. The ``zoo`` command freezes before the collector resumes, garbage and all (a
few MB, kept for the life of the process), so that pass has nothing to walk (it took
0.12 s).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_own = False


def own() -> None:
    """Say that this process is the ``zoo`` command's, which tunes the collector."""
    global _own
    _own = True


def freeze() -> None:
    """In zoo's own process, take every object there is now out of the collector's passes."""
    if _own:
        gc.freeze()


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection within the block; the collector is put back as it
    was (a collector the program had disabled stays disabled)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
