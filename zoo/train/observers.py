"""Run observers: the plugins' listeners (``register_observers``), built for a run and
kept apart from it.

A run that names observers (``--track``) builds each on the chief worker before it
starts (:func:`build`); the protocol tells them every event after zoo's own callbacks,
before the console (:func:`zoo.train.protocol.attach`). Each is wrapped in an
:class:`Isolated`: an observer that raises is reported once, naming its plugin, and
the run goes on without it, as a plugin that fails to load is dropped and zoo goes on.
An observer is never asked whether to stop a run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo._version import __version__
from zoo.errors import ZooError, describe_error
from zoo.storage import disk_full
from zoo.storage.runs import Stage
from zoo.train.events import Callback, RunEnd, RunWarning

if TYPE_CHECKING:
    from zoo.runconfig import Resolved, RunConfig, Tracked
    from zoo.train.callbacks import RunRecord


@dataclass(frozen=True)
class ObservedRun:
    """What an observer's builder is told of the run it will observe.

    Args:
        config: The run's configuration: components, their parameters, the settings
            (``config.flat()`` as one flat mapping, for a tracker's parameters).
        output: The folder its run directory goes in (the run directory itself arrives
            with ``on_run_begin``).
        versions: zoo's version and each plugin's that gives a component of the run or
            an observer, as ``{"zoo": "0.1.0", "keras_applications": "zoo 0.1.0"}``.
        resume: The run directory a resume continues, or ``None``: a new run.
    """

    config: RunConfig
    output: Path
    versions: Mapping[str, str]
    resume: Path | None = None


def observed_run(resolved: Resolved, output: Path, resume: Path | None) -> ObservedRun:
    """The :class:`ObservedRun` of ``resolved``."""
    entries = [resolved.dataset, resolved.backbone, resolved.head]
    entries += [tracked.entry for tracked in resolved.observers]
    versions = {"zoo": __version__} | {e.plugin.name: e.plugin.origin for e in entries}
    folder = resume.parent if resume is not None else output
    return ObservedRun(resolved.config, folder, versions, resume)


def build(resolved: Resolved, run: ObservedRun) -> list[Isolated]:
    """Each observer ``resolved`` names, built and isolated, in the order named.

    A builder that raises something other than ``ZooError`` is a broken plugin: it is
    reported when the run starts (:meth:`Isolated.broken`), and the run goes on without it.

    Raises:
        ZooError: a builder's user error (a missing package, a bad parameter).
    """
    built = []
    for tracked in resolved.observers:
        try:
            observer = tracked.entry.component.build(dict(tracked.params), run)
        except ZooError:
            raise
        except Exception as exc:  # a broken plugin must not take the run down
            built.append(Isolated.broken(tracked, f"could not be built: {describe_error(exc)}"))
            continue
        built.append(Isolated(tracked, observer))
    return built


class Isolated(Callback):
    """One observer, told each event until it raises; then reported once and dropped.

    The report is a run warning (``observer_failed``), so the console shows it and
    metrics.json keeps it. ``report`` is how it is told: the protocol sets it to the
    run's events once they exist (:func:`zoo.train.protocol.attach`).
    """

    def __init__(self, tracked: Tracked, observer: Any) -> None:
        self.tracked = tracked
        self.observer: Any = observer
        self.failure: str | None = None
        self.report: Callable[[RunWarning], None] | None = None
        self.unreported: RunWarning | None = None

    @classmethod
    def broken(cls, tracked: Tracked, why: str) -> Isolated:
        """An observer whose builder failed: reported when the run begins."""
        isolated = cls(tracked, None)
        isolated._fail(why)
        return isolated

    @property
    def name(self) -> str:
        return self.tracked.entry.name

    def recorded(self) -> Mapping[str, Any] | None:
        """What metrics.json keeps of the observer: its ``recorded()`` (such as MLflow's
        run id) while it works, or why it stopped."""
        if self.failure is not None:
            return {"failed": self.failure}
        recorded = getattr(self.observer, "recorded", None)
        if recorded is None:
            return None
        return self._call(recorded)

    def should_stop(self, stage: Stage, logs: Mapping[str, float]) -> str | None:
        return None  # an observer watches; zoo's own rules stop stages

    def _tell(self, event: str, *args: Any) -> None:
        if self.failure is None:
            self._call(getattr(self.observer, event, _ignore), *args)
        if self.unreported is not None and self.report is not None and event != "on_warning":
            warning, self.unreported = self.unreported, None
            self.report(warning)

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except Exception as exc:
            self._fail(f"raised {describe_error(exc)} in {getattr(method, '__name__', '?')}")
            return None

    def _fail(self, why: str) -> None:
        self.failure = why
        plugin = self.tracked.entry.plugin
        self.unreported = RunWarning(
            "observer_failed",
            f"observer '{self.name}' from plugin '{plugin.name}' ({plugin.origin}) {why}; "
            "the run goes on without it",
            "fix or upgrade the plugin, or leave the observer out of --track",
        )


def said(observers: Sequence[Isolated]) -> dict[str, dict[str, Any]]:
    """What each observer says of itself for metrics.json's ``tracking``, by name."""
    found = {observer.name: observer.recorded() for observer in observers}
    return {name: dict(recorded) for name, recorded in found.items() if recorded}


class Recorded(Callback):
    """Told the end after the observers: what they say of themselves then goes into
    metrics.json too (an MLflow run id, known once its background thread made the run,
    may come after the run record was written)."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record

    def on_run_end(self, end: RunEnd) -> None:
        before = self.record.record.data.get("tracking")
        self.record.tracked()
        if self.record.record.data.get("tracking") != before:
            with contextlib.suppress(disk_full.DiskFull):  # mlflow.json keeps the id
                self.record.record.write(end.status, end.error)


def _ignore(*args: Any) -> None:
    """An event the observer does not define."""


def _forward(event: str) -> Callable[..., None]:
    def tell(self: Isolated, *args: Any) -> None:
        self._tell(event, *args)

    tell.__name__ = tell.__qualname__ = event
    return tell


#: Every event but ``should_stop``, forwarded through :meth:`Isolated._tell`.
EVENTS: Sequence[str] = tuple(
    name for name in vars(Callback) if name.startswith("on_") and callable(vars(Callback)[name])
)
for _event in EVENTS:
    setattr(Isolated, _event, _forward(_event))
