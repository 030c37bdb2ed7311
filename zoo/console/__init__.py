"""Everything zoo shows on a terminal: tables, summaries, progress, errors.

Data (tables, ``--json``) goes to stdout; status, progress and errors go to stderr.
When a stream is not a terminal, rich drops colour and live displays, and progress
becomes one plain line per epoch.

Much of what is shown comes from files others made (class names in a model's
``zoo.json``, component names in a registry file, paths). Every string rendered goes
through :meth:`_Console.render_str`, which shows control characters as escapes
(``\\x1b``), so no file can move the cursor, clear the screen or retitle the window;
text from files is put into rich markup only through :func:`_escape`, so ``[red]`` in a
class name prints as it is. ``--json`` is left alone: JSON escapes control characters.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from zoo.components import Backbone, Component, Head
from zoo.config.registry_file import Recipe
from zoo.console.wrapping import WordTable
from zoo.errors import ZooError
from zoo.registry import Entry, PluginInfo, Registry

if TYPE_CHECKING:
    from zoo.model.assemble import LayerRow  # imports Keras

#: Control characters: C0 but newline and tab (zoo's own line breaks), DEL, and C1.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with each control character shown as an escape: ``\\x1b[2J`` prints
    as those six characters instead of clearing the screen."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


class _Console(Console):
    """A rich console that renders every string with its control characters shown
    (:func:`visible`): printed text, table cells, titles and headers alike."""

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(visible(text), **options)


# Emoji codes off: ``:x:`` in a class name stays ``:x:``.
_stdout = _Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 120)
# Status lines never wrap: in a log file, one event is one line.
err = _Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)
#: Where tables go: stdout, or stderr within :func:`tables_on_stderr`.
out = _stdout


@contextlib.contextmanager
def tables_on_stderr(enabled: bool = True) -> Iterator[None]:
    """Within the block, tables go to stderr when ``enabled``, keeping stdout for a
    command's ``--json`` output alone (:func:`zoo.cli.main` opens it around each command)."""
    global out
    before = out
    out = err if enabled else before
    try:
        yield
    finally:
        out = before


def _table(title: str | None = None) -> Table:
    return WordTable(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)


@contextlib.contextmanager
def python_warnings() -> Iterator[None]:
    """Within the block, Python's warnings (a library's or a plugin's, which may quote
    text from a file: matplotlib names a glyph it lacks) print as ever, on stderr, with
    control characters shown as escapes."""
    show = warnings.showwarning

    def shown(
        message: Any,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        stream = file or sys.stderr
        with contextlib.suppress(OSError):  # as warnings does: a closed stream loses it
            stream.write(visible(text))

    warnings.showwarning = shown
    try:
        yield
    finally:
        warnings.showwarning = show


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, never decorated."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def error(exc: BaseException | str) -> None:
    """An error on stderr: a :class:`ZooError` in its parts, another by its text; then
    its notes (``add_note``: what else went wrong, such as a record that failed)."""
    if not isinstance(exc, ZooError):
        err.print(f"[bold red]error:[/] {_escape(str(exc))}")
    else:
        err.print(f"[bold red]error:[/] {_escape(exc.what)}")
        for label, value in (("expected", exc.expected), ("fix", exc.fix)):
            if value:
                err.print(f"  [bold]{label}:[/] {_escape(value)}")
        if exc.got is not None:
            err.print(f"  [bold]got:[/] {_escape(repr(exc.got))}")
    for note in getattr(exc, "__notes__", ()):
        err.print(f"  [bold]note:[/] {_escape(note)}")


def warning(text: str) -> None:
    err.print(f"[yellow]warning:[/] {_escape(text)}")


def status(text: str) -> None:
    err.print(_escape(text))


def _escape(text: Any) -> str:
    """``text`` (from a file, say) as rich markup that shows it as it is, control
    characters as escapes: for the places a string is put into markup of zoo's own."""
    from rich.markup import escape

    return escape(visible(str(text)))


def _defaults(entry: Entry, limit: int = 4) -> str:
    items = [f"{k}={v}" for k, v in entry.defaults.items() if v is not None]
    more = f", +{len(items) - limit}" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more  # plain text: the table escapes every cell


def components(kind: str, registry: Registry, offline: Mapping[str, str] | None = None) -> None:
    """A kind's components; ``offline``: each one's readiness, by qualified name."""
    table = _table(f"{kind}s")
    columns = ("name", "description", "defaults", "plugin") + (("offline",) if offline else ())
    for column in columns:
        table.add_column(column, overflow="fold")
    for entry in registry.entries(kind):
        ready = (offline.get(entry.qualified_name, ""),) if offline else ()
        cells = (entry.name, entry.description, _defaults(entry), entry.plugin.provider)
        table.add_row(*(_escape(c) for c in cells), *ready)
    for name, info in registry.unavailable(kind):  # last, dimmed, with the fix
        dimmed = (f"[dim]{_escape(name)}[/]", f"[dim]{_escape(info.state)}[/]")
        table.add_row(*dimmed, "", _escape(info.provider))
    out.print(table)


def plugins(infos: Sequence[PluginInfo]) -> None:
    table = _table("plugins")
    for column in ("name", "package", "source", "status", "components"):
        table.add_column(column, overflow="fold")
    for info in infos:
        colour = {"ok": "green", "disabled": "dim", "unavailable": "yellow"}.get(info.status, "red")
        state = f"[{colour}]{_escape(info.state)}[/]"
        offered = info.unavailable if info.status == "unavailable" else info.components
        package = _escape(f"{info.package} {info.version}")
        offers = _escape(", ".join(offered) or "-")
        table.add_row(_escape(info.name), package, _escape(info.source), state, offers)
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
        cells = (recipe.name, recipe.dataset, recipe.backbone, recipe.head, settings)
        table.add_row(*map(_escape, (*cells, recipe.description)), *ready)
    out.print(table)


def recipe_info(recipe: Recipe, offline: str) -> None:
    """One recipe, a line per field: a table of one row folds its description thin."""
    settings = ", ".join(f"{k}={v}" for k, v in recipe.settings.items())
    out.print(f"[bold]recipe {_escape(recipe.name)}[/]\n{_escape(recipe.description)}")
    for label in ("dataset", "backbone", "head"):
        out.print(_escape(f"{label}: {getattr(recipe, label)}"))
    out.print(f"settings: {_escape(settings)}\noffline: {offline}")  # offline: zoo's markup


def component_info(entry: Entry) -> None:
    named = f"{_escape(entry.kind)} {_escape(entry.name)}"
    out.print(f"[bold]{named}[/] ({_escape(entry.qualified_name)})")
    out.print(_escape(entry.description))
    out.print(_escape(f"plugin: {entry.plugin.provider}, {entry.plugin.source}"))
    for label, value in _extras(entry):
        out.print(_escape(f"{label}: {value}"))
    table = _table()
    for column in ("parameter", "type", "default", "help"):
        table.add_column(column, overflow="fold")
    defaults = entry.defaults
    for param in entry.params:
        default = "(required)" if param.required else repr(defaults.get(param.name))
        one_of = "one of " if param.choices else ""
        allowed = f" ({one_of}{param.allowed})" if param.allowed else ""
        cells = (param.name, param.type_name, default, param.help + allowed)
        table.add_row(*map(_escape, cells))
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
        cells = (row.name, row.type, row.output_shape)
        table.add_row(*map(_escape, cells), f"{row.params:,}", "yes" if row.trainable else "no")
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
        table.add_column(_escape(name), justify="right")
    for split, values in metrics.items():
        cells = (f"{values[n]:.4f}" if n in values else "-" for n in names)
        table.add_row(_escape(split), *cells)
    out.print(table)


def backbone_layers(title: str, rows: Sequence[Mapping[str, Any]], note: str | None) -> None:
    """Each layer of a backbone, bottom first, with the ``--fine-tune-layers`` N that
    starts there (``zoo info BACKBONE --layers``)."""
    table = _table(title)
    for column in ("N", "layer", "type", "params", ""):
        table.add_column(column, justify="right" if column in ("N", "params") else "left")
    for row in rows:
        frozen = "stays frozen" if row["batch_norm"] else ""
        named = (_escape(row["name"]), _escape(row["type"]))
        table.add_row(str(row["top"]), *named, f"{row['params']:,}", frozen)
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
    out.print(f"run directory: {_escape(path)}")


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
            self._task = self._progress.add_task(_escape(self.description), total=self.total)

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
