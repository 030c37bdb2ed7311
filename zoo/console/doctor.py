"""``zoo doctor``'s report on the terminal, on console's streams."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo import console
from zoo.console import _escape, _table
from zoo.console.transfers import size

_MARKS = {"ok": "[green]ok[/]", "info": "[dim]info[/]", "warning": "[yellow]warning[/]"}


def report(found: Mapping[str, Any]) -> None:
    """The findings (``zoo.runtime.doctor.Report.to_json()``), one a line with its fix;
    the caches."""
    table = _table("zoo doctor")
    for column in ("check", "status", "found"):
        table.add_column(column, overflow="fold")
    for finding in found["findings"]:
        text = _escape(finding["text"])
        if finding["fix"]:
            text += f"\n[bold]fix:[/] {_escape(finding['fix'])}"
        mark = _MARKS.get(finding["level"], "[bold red]problem[/]")
        table.add_row(_escape(finding["topic"]), mark, text)
    console.out.print(table)
    caches = _table("caches")
    for column in ("cache", "path", "files", "size", "variable"):
        caches.add_column(column, overflow="fold", justify="right" if column == "size" else "left")
    for cache in found["caches"]:
        where = _escape(cache["path"]) + ("" if cache["exists"] else " [dim](not created yet)[/]")
        counted = (str(cache["files"]), size(cache["bytes"]))
        caches.add_row(_escape(cache["name"]), where, *counted, _escape(cache["variable"]))
    console.out.print(caches)
    levels = [f["level"] for f in found["findings"]]
    counts = [_count(levels.count(level), level) for level in ("problem", "warning")]
    verdict = "zoo can work here" if found["healthy"] else "zoo cannot work as installed"
    console.status(f"{', '.join(counts)}: {verdict}")


def _count(number: int, what: str) -> str:
    return f"{number} {what}{'s' * (number != 1)}"
