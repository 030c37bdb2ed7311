"""Keeping paths built from outside input inside the folder they belong to.

A bundle's parameters, a preset handle, a manifest's file names: values zoo did not
choose end up in paths it writes. Before anything is created, moved or written, the
path is checked here: its parent resolved (symbolic links followed) must lie inside the
intended folder (itself resolved, so a cache that is a link as a whole is fine), and
its last component must be a plain name, not a link leading out. ``..`` and absolute
parts are caught by the resolution; :func:`component` refuses what no single path
component may be (``..``, ``/``, a backslash, NUL) before a path is even built.
:func:`links_out` finds the links of a folder copied from elsewhere (a run directory
to resume) that would take zoo's writes out of it.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo.errors import ZooError

#: What a single path component built from outside input must not contain.
_FORBIDDEN = {"/": "a slash", "\\": "a backslash", "\0": "a NUL character"}


def within(path: Path, root: Path) -> bool:
    """Whether ``path`` stays inside ``root`` (as :func:`inside` checks), without raising."""
    base = root.resolve()
    resolved = path.parent.resolve() / path.name
    if path.name in ("", ".", "..") or not resolved.is_relative_to(base):
        return False
    return not resolved.is_symlink() or resolved.resolve().is_relative_to(base)


def links_out(folder: Path) -> list[Path]:
    """The symbolic links under ``folder`` (none followed) that lead outside it: a
    folder zoo writes into, copied from someone else, may hold them."""
    found = []
    for parent, folders, files in os.walk(folder):
        for name in sorted(folders + files):
            path = Path(parent) / name
            if path.is_symlink() and not within(path, folder):
                found.append(path)
    return found


def inside(path: Path, root: Path, *, what: str, got: str, fix: str) -> Path:
    """``path`` with its parent resolved, when it stays inside ``root``.

    Args:
        path: Where zoo is about to write.
        root: The folder it must stay in.
        what: What is being written, for the message ("the file config.json of backbone
            keras_hub").
        got: The outside value the path was built from, shown last.
        fix: How to fix it.

    Raises:
        ZooError: the path, or a symbolic link on the way, leads outside ``root``.
    """
    base = root.resolve()
    resolved = path.parent.resolve() / path.name
    if not within(path, root):
        raise ZooError(
            f"{what} would be written to {path}, which leads outside {base}"
            + ("" if path == resolved else f" (it resolves to {resolved.resolve()})")
            + "; zoo writes nothing there.",
            expected=f"a path inside {base}",
            fix=fix,
            got=got,
        )
    return resolved


def component(value: str, *, what: str, folder: Path, fix: str, got: str | None = None) -> str:
    """``value`` when it is one plain path component (a folder or file name).

    ``what`` names where ``value`` comes from; ``got`` is the outside value it is part
    of (a whole handle), ``value`` itself by default.

    Raises:
        ZooError: ``value`` is empty, ``.`` or ``..``, or has a slash, a backslash or NUL.
    """
    wrong = [f"it has {said}" for char, said in _FORBIDDEN.items() if char in value]
    if value in ("", ".", ".."):
        wrong.append("it is empty" if not value else "it names a folder, not a name in one")
    if wrong:
        raise ZooError(
            f"{what} has a part zoo cannot use as a folder name inside {folder}: "
            f"{value!r} ({'; '.join(wrong)}).",
            expected="plain names between the slashes: no '..', '.', empty parts, "
            "backslashes or NUL",
            fix=fix,
            got=value if got is None else got,
        )
    return value
