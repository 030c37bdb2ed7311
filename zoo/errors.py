"""User-facing errors: what happened, what was expected, how to fix it."""

from __future__ import annotations

import difflib
import os
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Libraries whose frames an error message passes over to name the plugin's line.
_LIBRARIES = tuple(
    f"{os.sep}{name}{os.sep}"
    for name in ("keras", "tensorflow", "tensorflow_datasets", "numpy", "pluggy", "importlib")
)


class ZooError(Exception):
    """A mistake the user can fix: bad input, a missing file, an unknown name.

    The CLI prints it without a traceback and exits with ``exit_code`` (2).
    Bugs are ordinary exceptions and keep their traceback.

    Args:
        what: What happened, one sentence.
        expected: What zoo expected instead.
        fix: How to fix it: a command to run, a flag to pass.
        got: The value received, shown last.
    """

    exit_code = 2

    def __init__(
        self,
        what: str,
        *,
        expected: str | None = None,
        fix: str | None = None,
        got: Any = None,
    ) -> None:
        self.what = what
        self.expected = expected
        self.fix = fix
        self.got = got
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [self.what]
        if self.expected:
            parts.append(f"Expected: {self.expected}")
        if self.fix:
            parts.append(f"Fix: {self.fix}")
        if self.got is not None:
            parts.append(f"Got: {self.got!r}")
        return "\n".join(parts)


class PluginUnavailable(Exception):
    """Raised by a plugin that cannot work here, typically for want of a package.

    Raise it from a hook after registering, or at import time: zoo lists the plugin as
    unavailable with ``install`` (``zoo list``, ``zoo plugins``), drops what it
    registered, and names the command when a run asks for one of its components. It
    is not a failure: no other command warns about it.

    Args:
        reason: What is missing, completing "plugin X ...": ``"needs the package keras-hub"``.
        install: The command that makes it available: ``"pip install 'zoo[hub]'"``.
    """

    def __init__(self, reason: str, *, install: str | None = None) -> None:
        self.reason = reason
        self.install = install
        super().__init__(reason + (f" ({install})" if install else ""))


class RunFailed(Exception):
    """Training stopped on its own terms (for example a NaN loss); exit code 1."""

    exit_code = 1


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run, which has said what is saved; exit code 130, nothing more
    to print."""

    exit_code = 130


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates that look most like ``name``, best first."""
    candidates = list(candidates)
    found = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    prefixed = [c for c in candidates if c.startswith(name) and c not in found]
    return (found + prefixed)[:n]


def one_of(candidates: Iterable[str]) -> str:
    """``'a', 'b' or 'c'`` for messages."""
    items = [f"'{c}'" for c in sorted(candidates)]
    if not items:
        return "nothing (none is registered)"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]


def describe_error(exc: BaseException) -> str:
    """The exception and the last line that raised it in the plugin's own code.

    Frames in zoo's host code and in the libraries a plugin calls (Keras, TensorFlow,
    numpy, pluggy, importlib) are passed over, so the line named is the plugin's.
    """
    host = str(Path(__file__).resolve().parent) + os.sep  # not a sibling like zoo_mine/
    builtins = os.path.join(host, "builtins", "")  # a wheel's built-in plugins: plugin code
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        name = frame.filename
        in_host = name.startswith(host) and not name.startswith(builtins)
        in_library = name.startswith("<frozen") or any(lib in name for lib in _LIBRARIES)
        if not in_host and not in_library:
            return f"{type(exc).__name__}: {exc} ({name}:{frame.lineno})"
    return f"{type(exc).__name__}: {exc}"
