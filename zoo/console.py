"""Everything zoo shows on a terminal: tables, summaries, progress, errors.

Data (tables, ``--json``) goes to stdout; status, progress and errors go to stderr.
When a stream is not a terminal, rich drops colour and live displays, and progress
becomes one plain line per epoch.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from zoo.components import Backbone, Component, Head
from zoo.config import Recipe
from zoo.errors import ZooError
from zoo.model import LayerRow
from zoo.registry import Entry, PluginInfo, Registry

_stdout = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
# Status lines never wrap: in a log file, one event is one line.
err = Console(stderr=True, highlight=False, soft_wrap=True)
#: Where tables go: stdout, or stderr while a command prints ``--json`` to stdout.
out = _stdout


def tables_to_stderr(enabled: bool = True) -> None:
    """Send tables to stderr, keeping stdout for ``--json`` output alone."""
    global out
    out = err if enabled else _stdout


def _table(title: str | None = None) -> Table:
    return Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, never decorated."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def error(exc: ZooError | str) -> None:
    if isinstance(exc, str):
        err.print(f"[bold red]error:[/] {exc}", markup=True)
        return
    err.print(f"[bold red]error:[/] {_escape(exc.what)}")
    for label, value in (("expected", exc.expected), ("fix", exc.fix)):
        if value:
            err.print(f"  [bold]{label}:[/] {_escape(value)}")
    if exc.got is not None:
        err.print(f"  [bold]got:[/] {_escape(repr(exc.got))}")


def warning(text: str) -> None:
    err.print(f"[yellow]warning:[/] {_escape(text)}")


def status(text: str) -> None:
    err.print(_escape(text))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _defaults(entry: Entry, limit: int = 4) -> str:
    items = [f"{k}={v}" for k, v in entry.defaults.items() if v is not None]
    more = f", +{len(items) - limit}" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def components(kind: str, registry: Registry, offline: Mapping[str, str] | None = None) -> None:
    """A kind's components; ``offline``: each one's readiness, by qualified name."""
    table = _table(f"{kind}s")
    columns = ("name", "description", "defaults", "plugin") + (("offline",) if offline else ())
    for column in columns:
        table.add_column(column, overflow="fold")
    for entry in registry.entries(kind):
        ready = (offline.get(entry.qualified_name, ""),) if offline else ()
        table.add_row(
            entry.name, entry.description, _defaults(entry), entry.plugin.provider, *ready
        )
    for name, info in registry.unavailable(kind):  # last, dimmed, with the fix
        table.add_row(f"[dim]{name}[/]", f"[dim]{_escape(info.state)}[/]", "", info.provider)
    out.print(table)


def plugins(infos: Sequence[PluginInfo]) -> None:
    table = _table("plugins")
    for column in ("name", "package", "source", "status", "components"):
        table.add_column(column, overflow="fold")
    for info in infos:
        colour = {"ok": "green", "disabled": "dim", "unavailable": "yellow"}.get(info.status, "red")
        state = f"[{colour}]{_escape(info.state)}[/]"
        offered = info.unavailable if info.status == "unavailable" else info.components
        package = f"{info.package} {info.version}"
        table.add_row(info.name, package, info.source, state, ", ".join(offered) or "-")
    out.print(table)


def recipes(found: Mapping[str, Recipe], offline: Mapping[str, str] | None = None) -> None:
    """The recipes; ``offline``: each one's readiness, by name."""
    table = _table("recipes")
    columns = ("name", "dataset", "backbone", "head", "settings", "description")
    for column in columns + (("offline",) if offline else ()):
        table.add_column(column, overflow="fold")
    for recipe in found.values():
        settings = ", ".join(f"{k}={v}" for k, v in recipe.settings.items())
        ready = (offline.get(recipe.name, ""),) if offline else ()
        table.add_row(
            recipe.name,
            recipe.dataset,
            recipe.backbone,
            recipe.head,
            settings,
            recipe.description,
            *ready,
        )
    out.print(table)


def component_info(entry: Entry) -> None:
    out.print(f"[bold]{entry.kind} {entry.name}[/] ({entry.qualified_name})")
    out.print(entry.description)
    out.print(f"plugin: {entry.plugin.provider}, {entry.plugin.source}")
    for label, value in _extras(entry):
        out.print(f"{label}: {value}")
    table = _table()
    for column in ("parameter", "type", "default", "help"):
        table.add_column(column, overflow="fold")
    defaults = entry.defaults
    for param in entry.params:
        default = "(required)" if param.required else repr(defaults.get(param.name))
        choices = f" (one of {', '.join(map(str, param.choices))})" if param.choices else ""
        table.add_row(param.name, param.type_name, default, param.help + choices)
    if entry.params:
        out.print(table)
    else:
        out.print("no parameters")


def _extras(entry: Entry[Component]) -> Iterable[tuple[str, str]]:
    component = entry.component
    if isinstance(component, Backbone):
        yield "minimum image size", str(component.min_image_size)
        for field, value in component.card().items():
            if value:
                yield field.replace("_", " "), f"{value:,}" if isinstance(value, int) else value
    if isinstance(component, Head):
        yield "classes", component.class_range


def devices(found: Sequence[str], strategy: str, precision: str) -> None:
    status(f"devices: {', '.join(found)}")
    status(f"strategy: {strategy}; precision: {precision}")


def model_summary(title: str, rows: Sequence[LayerRow], counts: Mapping[str, int]) -> None:
    table = _table(title)
    table.add_column("layer", overflow="fold")
    table.add_column("type")
    table.add_column("output shape")
    table.add_column("params", justify="right")
    table.add_column("trainable", justify="center")
    for row in rows:
        table.add_row(
            row.name,
            row.type,
            row.output_shape,
            f"{row.params:,}",
            "yes" if row.trainable else "no",
        )
    out.print(table)
    out.print(
        f"Total params: {counts['total']:,}  "
        f"Trainable params: {counts['trainable']:,}  "
        f"Non-trainable params: {counts['non_trainable']:,}"
    )


def results(title: str, metrics: Mapping[str, Mapping[str, float]]) -> None:
    """A table of metrics per split: ``{"test": {"loss": .., "accuracy": ..}}``."""
    names = sorted({name for values in metrics.values() for name in values})
    table = _table(title)
    table.add_column("split")
    for name in names:
        table.add_column(name, justify="right")
    for split, values in metrics.items():
        table.add_row(split, *(f"{values[n]:.4f}" if n in values else "-" for n in names))
    out.print(table)


def backbone_layers(title: str, rows: Sequence[Mapping[str, Any]], note: str | None) -> None:
    """Each layer of a backbone, bottom first, with the ``--fine-tune-layers`` N that
    starts there (``zoo info BACKBONE --layers``)."""
    table = _table(title)
    for column in ("N", "layer", "type", "params", ""):
        table.add_column(column, justify="right" if column in ("N", "params") else "left")
    for row in rows:
        frozen = "stays frozen" if row["batch_norm"] else ""
        table.add_row(str(row["top"]), row["name"], row["type"], f"{row['params']:,}", frozen)
    out.print(table)
    status("--fine-tune-layers N unfreezes row N and those below it; layers with params learn")
    if note:
        warning(note)


def cache_entries(rows: Sequence[Sequence[str]], title: str) -> None:
    """``zoo cache list``: one row per entry (key, dataset, backbone, split, what,
    size, last use), least recently used first."""
    table = _table(title)
    for column in ("key", "dataset", "backbone", "split", "features", "size", "last use"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*map(_escape, row))
    out.print(table)


def run_directory(path: Any) -> None:
    out.print(f"run directory: {path}")


def _live_bar(*columns: TextColumn) -> Progress | None:
    """A started progress bar of batches on a terminal's stderr; ``None`` elsewhere."""
    if not err.is_terminal:
        return None
    batches = TextColumn("{task.completed}/{task.total} batches")
    shown = (TextColumn("{task.description}"), BarColumn(), batches, *columns)
    bar = Progress(*shown, TimeRemainingColumn(), console=err, transient=True)
    bar.start()
    return bar


class TrainingProgress:
    """Live progress of a training stage: a bar per epoch on a terminal, a line per epoch
    otherwise. ``label`` names the stage's epochs (``train``, ``fine-tune``)."""

    def __init__(self, epochs: int, steps: int | None, label: str = "train") -> None:
        self.epochs = epochs
        self.steps = steps
        self.label = label
        self._progress: Progress | None = None
        self._task: Any = None
        self._epoch_started = 0.0

    def start(self) -> None:
        self._progress = _live_bar(TextColumn("{task.fields[metrics]}"))

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()

    def epoch_begin(self, epoch: int) -> None:
        """Epoch ``epoch`` (1-based) of the stage begins."""
        self._epoch_started = time.perf_counter()
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(
                f"{self.label} epoch {epoch}/{self.epochs}", total=self.steps, metrics=""
            )

    def batch_end(self, step: int, logs: Mapping[str, float]) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step + 1, metrics=format_metrics(logs))

    def epoch_end(self, epoch: int, logs: Mapping[str, float], note: str = "") -> None:
        seconds = time.perf_counter() - self._epoch_started
        metrics = format_metrics(logs) + note
        status(f"{self.label} epoch {epoch}/{self.epochs}: {metrics} ({seconds:.1f}s)")


class TaskProgress:
    """Progress of a long task of known steps; a context manager, or ``start``/``stop``."""

    def __init__(self, description: str, total: int | None) -> None:
        self.description = description
        self.total = total
        self._progress: Progress | None = None
        self._task: Any = None
        self._started = 0.0

    def start(self) -> None:
        self._started = time.perf_counter()
        self._progress = _live_bar()
        if self._progress is not None:
            self._task = self._progress.add_task(self.description, total=self.total)

    def advance(self, step: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step + 1)

    def stop(self, done: bool = True) -> None:
        if self._progress is not None:
            self._progress.stop()
        if done:
            status(f"{self.description}: done in {time.perf_counter() - self._started:.1f}s")

    def __enter__(self) -> TaskProgress:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(done=exc[0] is None)


def format_metrics(logs: Mapping[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if isinstance(v, int | float))


# --- Results: predict, export (issue 5). Functions below this line belong to the results
# --- commands; keep engine and listing output above it. The data summary, evaluation
# --- reports and comparisons are in zoo/console_reports.py.


def exported(fmt: str, path: Any) -> None:
    out.print(f"exported ({fmt}): {_escape(str(path))}")


def predictions(
    predicted: Sequence[Mapping[str, Any]], errors: Sequence[Mapping[str, str]], top_k: int
) -> None:
    """One row per file: its class and probability, and the top ``top_k`` if over 1."""
    table = _table("predictions")
    table.add_column("file", overflow="fold")
    table.add_column("class")
    table.add_column("probability", justify="right")
    if top_k > 1:
        table.add_column(f"top {top_k}", overflow="fold")
    for row in predicted:
        cells = [_escape(row["file"]), _escape(row["class"]), f"{row['probability']:.4f}"]
        if top_k > 1:
            cells.append(", ".join(_ranked(t) for t in row["top_k"]))
        table.add_row(*cells)
    if predicted:
        out.print(table)
    if errors:
        failed = _table("unreadable")
        failed.add_column("file", overflow="fold")
        failed.add_column("error", overflow="fold")
        for row in errors:
            failed.add_row(_escape(row["file"]), _escape(row["error"]))
        out.print(failed)
    status(f"predicted {len(predicted)} files; {len(errors)} could not be read")


def _ranked(entry: Mapping[str, Any]) -> str:
    return f"{_escape(entry['class'])} {entry['probability']:.4f}"
