"""Downloads on the terminal: transfer progress and ``zoo fetch``'s table, on console's streams.

Progress is a bar of bytes on stderr when it is a terminal, and one status line per
file otherwise; the table of files goes where console's tables go (stdout, or stderr
while ``--json`` holds stdout).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from zoo import console
from zoo.console import _escape, _table

#: How ``zoo fetch`` colours what became of each file.
_COLOURS = {"fetched": "green", "installed": "green", "bundled": "green", "present": "green"}


@contextlib.contextmanager
def transfer(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(bytes)``; show a bar while it runs, then one line with the total."""
    started = time.perf_counter()
    done = 0
    progress = None
    if console.err.is_terminal:
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console.err,
            transient=True,
        )
        progress.start()
    task = progress.add_task(_escape(description), total=total) if progress else None

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None and task is not None:
            progress.update(task, completed=done)

    try:
        yield advance
    finally:
        if progress is not None:
            progress.stop()
    console.status(f"{description}: {size(done)} in {time.perf_counter() - started:.1f}s")


def size(count: int | None) -> str:
    """``94.7 MB``, ``812 B``, or ``?`` when unknown."""
    if count is None:
        return "?"
    amount = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if amount < 1000 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    raise AssertionError("unreachable")


def files(title: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """``zoo fetch``'s files: component, file, status, size, checksum, where."""
    table = _table(title)
    for column in ("component", "file", "status", "size", "checksum", "path"):
        table.add_column(column, overflow="fold", justify="right" if column == "size" else "left")
    for row in rows:
        colour = _COLOURS.get(row["status"], "yellow")
        table.add_row(
            _escape(row["component"]),
            _escape(row["file"]),
            f"[{colour}]{_escape(row['status'])}[/]",
            size(row["bytes"]),
            _short(row["checksum"]),
            _escape(row["path"]),
        )
    console.out.print(table)


def readiness(summary: Mapping[str, Any]) -> str:
    """``zoo list``'s offline column, from ``Needs.summary()``: ``ready``, ``fetch 824.9
    MB`` (or a count of files), ``?``."""
    if summary["status"] == "ready":
        return "[green]ready[/]"
    if summary["status"] == "unknown":
        return "[dim]?[/]"
    count = len(summary["missing"])
    amount = summary["missing_bytes"]
    what = size(amount) if amount is not None else f"{count} file{'s' * (count != 1)}"
    return f"[yellow]fetch {what}[/]"


def _short(checksum: str) -> str:
    """``sha256:b7974bd0…`` for the table; ``--json`` has it whole."""
    algorithm, _, digest = checksum.partition(":")
    return f"{algorithm}:{digest[:8]}…" if digest else checksum
