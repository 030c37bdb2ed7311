"""A file or folder zoo cannot read or write, said as a :class:`zoo.errors.ZooError`.

The operating system's reason (``strerror``: "Permission denied", "No such file or
directory") is what the user needs; the ``OSError``'s traceback is not, so it stays
the error's cause, which ``--verbose`` prints.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from zoo.errors import ZooError


@contextlib.contextmanager
def explained(
    doing: str, path: Path, *, expected: str, fix: str, got: Path | None = None
) -> Iterator[None]:
    """Turn an ``OSError`` in the block into ``ZooError("cannot DOING PATH: reason.")``.

    Args:
        doing: What failed, completing "cannot ...": ``"write the figure"``.
        path: The path named in the message.
        expected: What zoo needed there: ``"a folder zoo can write to"``.
        fix: How to go on: ``"pass another --output DIR"``.
        got: The value the user gave, when not ``path`` itself.
    """
    try:
        yield
    except OSError as exc:
        raise ZooError(
            f"cannot {doing} {path}: {exc.strerror or exc}.",
            expected=expected,
            fix=fix,
            got=str(got if got is not None else path),
        ) from exc
