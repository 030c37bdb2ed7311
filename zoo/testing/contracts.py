"""zoo's contracts, checked one component at a time; what :mod:`zoo.testing` runs.

Each check files every problem it finds through a :class:`Found` and carries on, so a
report lists them all. The checks of declarations here need no TensorFlow; building on
tiny inputs is :mod:`zoo.testing.builds`, which :mod:`zoo.testing` imports only once it
has chosen to be quiet or verbose, since importing it loads TensorFlow.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from zoo.errors import ZooError, describe_error
from zoo.params import resolve
from zoo.registry import Entry
from zoo.storage.declared import problems as download_problems

#: What :meth:`Found.call` returns when the action raised (the problem is filed).
FAILED = object()


@dataclass(frozen=True)
class Problem:
    """One broken promise: which component, what was checked, what went wrong."""

    component: str
    check: str
    detail: str

    def __str__(self) -> str:
        return f"{self.component}: {self.check}: {self.detail}"


@dataclass(frozen=True)
class Settings:
    """How big the tiny inputs are: the backbones' image side, examples read per split."""

    image_size: int
    max_examples: int


@dataclass(frozen=True)
class Found:
    """Files the problems of one component in ``problems``."""

    problems: list[Problem]
    component: str

    def __call__(self, check: str, detail: str) -> None:
        problem = Problem(self.component, check, " ".join(detail.split()))
        if problem not in self.problems:  # the same fault, met at two sizes
            self.problems.append(problem)

    def call(self, check: str, action: Callable[[], Any]) -> Any:
        """``action()``, or :data:`FAILED` with a problem filed when it raises."""
        try:
            return action()
        except Exception as exc:
            self(check, f"raised {describe_error(exc)}")
            return FAILED


# --- Entries ------------------------------------------------------------------------


def check_declaration(entry: Entry, found: Found) -> None:
    """A one-line description; every parameter with help, and a default if it needs one.

    A ``str`` parameter may default to ``None``, meaning "not given" (an optional path);
    a number or a flag without a default is a mistake the builder would meet as ``None``.
    """
    description = entry.component.description.strip()
    if not description or "\n" in description:
        found("description", "must be one non-empty line (zoo list shows it)")
    for param in entry.params:
        if not param.required and param.default is None and param.type is not str:
            found(
                "params",
                f"'{param.name}' has no default; give it one, or declare it required=True",
            )
        if not param.help:
            found("params", f"'{param.name}' has no help text (zoo info shows it)")


def check_downloads(entry: Entry, overrides: Mapping[str, Any], found: Found) -> None:
    """The downloads declaration, if any, returns valid ``zoo.Download`` entries offline.

    It is called with the values the component is checked with (not at all when a
    required one is missing), with sockets refused; raising ``zoo.ZooError`` is its way
    of saying it cannot tell, and is no problem.
    """
    declare = entry.component.downloads
    if declare is None:
        return
    layers = [(entry.meta.source or "registry.toml", entry.meta.defaults), ("params=", overrides)]
    try:
        values = resolve(entry.kind, entry.name, entry.params, layers)
    except ZooError:
        return  # the parameters check names what is missing
    try:
        with _no_network():
            declared = declare(values)
    except ZooError:
        return
    except Exception as exc:
        found("downloads", f"raised {describe_error(exc)}")
        return
    for problem in download_problems(declared):
        found("downloads", problem)


@contextlib.contextmanager
def _no_network() -> Iterator[None]:
    """Refuse connections and name lookups: a declaration must not use the network."""
    from unittest import mock

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("a downloads declaration must not use the network (zoo.testing)")

    with (
        mock.patch.object(socket.socket, "connect", refuse),
        mock.patch.object(socket, "getaddrinfo", refuse),
    ):
        yield


def resolved(entry: Entry, overrides: Mapping[str, Any], found: Found) -> dict[str, Any] | None:
    """``entry``'s parameter values with ``overrides``, or ``None`` with the problem filed."""
    layers = [(entry.meta.source or "registry.toml", entry.meta.defaults), ("params=", overrides)]
    try:
        return resolve(entry.kind, entry.name, entry.params, layers)
    except ZooError as exc:
        found("params", f"{exc.what} (pass values with params={{'{entry.name}': {{...}}}})")
        return None
