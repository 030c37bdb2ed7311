"""What components need before they work offline: their declared downloads, resolved.

``zoo list`` asks :func:`needs` of every component with its defaults; ``zoo fetch``
asks it of the components a command line names (datasets, backbones, heads, or the
three of a recipe) with the recipe's and ``--set`` values. Nothing here imports
TensorFlow or touches the network: declarations are called, files are ``stat``-ed.

A bundle's values are someone else's (:func:`bundled`): they choose which files, this
machine chooses where. Each file goes into one of this machine's caches
(:func:`zoo.storage.caches.known`) or the folder its component declares with this machine's
values alone (the download's ``root``, else the file's folder); a value typed here
(``--set``) or set in this machine's registry.toml may name any folder.

A run directory's values are someone else's too (:func:`from_run`): rebuilding its
components for ``zoo evaluate`` or ``zoo run --resume``, its config.json chooses which
data, and the same rule chooses where anything is written: the files a component would
fetch and the data it prepares (a declaration's ``prepared``, such as a TFDS data
directory). Files read where they are (an image folder, a present archive, a preset
directory) may be anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from zoo.components import KINDS, Component
from zoo.errors import ZooError, closest, describe_error, one_of
from zoo.params import resolve
from zoo.registry import Entry, Registry
from zoo.runconfig import Resolved, parse_assignment, resolve_saved
from zoo.storage import caches, confine
from zoo.storage.declared import IN_PLACE, Download, FileState, confined, problems, state
from zoo.storage.runs import CONFIG, RunRecord

#: A component's readiness offline: everything it declares is in place (or it
#: declares nothing), something is missing, or its declaration cannot tell.
Readiness = Literal["ready", "missing", "unknown"]


@dataclass(frozen=True)
class Target:
    """A component to make ready, with the values a recipe or ``--set`` gives it.

    ``overrides`` are recorded in bundles, so the machine installing one resolves the
    same parameters on top of its own defaults.
    """

    entry: Entry[Component]
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.entry.kind} {self.entry.qualified_name}"


@dataclass(frozen=True)
class Needs:
    """What ``target`` downloads, or why its declaration cannot say."""

    target: Target
    downloads: tuple[Download, ...] = ()
    error: ZooError | None = None

    def states(self) -> list[tuple[Download, FileState]]:
        return [(d, state(d)) for d in self.downloads]

    @property
    def readiness(self) -> Readiness:
        if self.error is not None:
            return "unknown"
        return "ready" if all(s in IN_PLACE for _, s in self.states()) else "missing"

    def summary(self) -> dict[str, Any]:
        """Readiness as plain data: ``zoo list --json``'s ``offline`` field."""
        return summarise([self])


def summarise(found: Sequence[Needs], error: ZooError | None = None) -> dict[str, Any]:
    """The readiness of components together (a recipe's three), as plain data.

    ``error``: why the components could not even be named (a recipe's unknown backbone).
    """
    errors = [error] if error else [n.error for n in found if n.error is not None]
    missing = [d for n in found for d, s in n.states() if s not in IN_PLACE]
    sizes = [d.size for d in missing]
    status: Readiness = "unknown" if errors else "missing" if missing else "ready"
    return {
        "status": status,
        "ready": None if errors else not missing,
        "files": sum(len(n.downloads) for n in found),
        "missing": [d.name for d in missing],
        "missing_bytes": None if None in sizes else sum(s for s in sizes if s is not None),
        "reason": errors[0].what if errors else None,
    }


def needs(target: Target) -> Needs:
    """Call ``target``'s declaration with its resolved parameters; never raises."""
    entry = target.entry
    declare = entry.component.downloads
    if declare is None:
        return Needs(target)
    layers = [(entry.meta.source or "registry.toml", entry.meta.defaults)]
    layers.append(("the recipe or --set", target.overrides))
    try:
        declared = declare(resolve(entry.kind, entry.name, entry.params, layers))
    except ZooError as exc:
        return Needs(target, error=exc)
    except Exception as exc:
        return Needs(target, error=_broken(target, f"raised {describe_error(exc)}"))
    wrong = problems(declared)
    if wrong:
        return Needs(target, error=_broken(target, "; ".join(wrong)))
    try:
        for d in declared:
            confined(d, _owner(target))
    except ZooError as exc:
        return Needs(target, error=exc)
    return Needs(target, tuple(declared))


def bundled(target: Target) -> Needs:
    """:func:`needs` of a component a bundle describes, its files kept in this machine's
    folders (see the module's docstring): one that a bundle's value moves elsewhere is
    an error naming the value, before anything is written."""
    found = needs(target)
    if found.error is not None:
        return found
    own = needs(_here(target))
    folders = _folders(own)
    for d in found.downloads:
        for path in (d.path, d.marker):
            if path is not None and not any(confine.within(path, f) for f in folders):
                return Needs(target, error=_moved(target, d, path, own))
    return found


def from_run(registry: Registry, record: RunRecord) -> Resolved:
    """The configuration ``record``'s config.json holds (:func:`resolve_saved`), its
    values held to this machine's folders (see the module's docstring) before anything
    is built.

    Raises:
        ZooError: a component is gone or its parameters changed; or a recorded value
            would have a component write outside this machine's folders, naming the
            file, the value and the fixes.
    """
    resolved = resolve_saved(registry, record.config)
    entries = (resolved.dataset, resolved.backbone, resolved.head)
    for choice, entry in zip(resolved.config.choices, entries, strict=True):
        recorded(Target(entry, dict(choice.params)), record.path / CONFIG)
    return resolved


def recorded(target: Target, source: Path) -> None:
    """Check that ``target``'s values, as the run file ``source`` records them, keep
    what building it writes in this machine's folders: a file it would fetch (one not in
    place) and the data it prepares go into one of this machine's caches or where
    ``target`` keeps them with this machine's values.

    A declaration that fails with the recorded values (a Hugging Face handle, a handle
    leading out of kagglehub's cache) leaves it to the builder, which checks what it
    reads (the keras_hub plugin refuses such a handle before fetching anything).

    Raises:
        ZooError: a recorded value would move such a file elsewhere.
    """
    found, own = needs(target), needs(_here(target))
    if found.error is not None or found.downloads == own.downloads:
        return
    folders = _folders(own)
    outside = [
        (d, path)
        for d in found.downloads
        for path in (_unprepared(d) if state(d) in IN_PLACE else [d.path, d.marker, d.prepared])
        if path is not None and not any(confine.within(path, f) for f in folders)
    ]
    if outside:
        raise _recorded_moved(target, outside, own, source)


def _unprepared(d: Download) -> list[Path]:
    """What preparing ``d``'s data would write: nothing where it is prepared already (a
    user's own run, prepared in a folder typed when it trained, is only read)."""
    return [d.prepared] if d.prepared is not None and not d.prepared.exists() else []


def _folders(own: Needs) -> list[Path]:
    """Where a component's files may go: this machine's caches, and the folders it
    declares with this machine's values (a root, else each file's folder; what it
    prepares)."""
    declared = [d.root or d.path.parent for d in own.downloads]
    prepared = [d.prepared.parent for d in own.downloads if d.prepared is not None]
    return [c.path for c in caches.known()] + declared + prepared


def _here(target: Target) -> Target:
    """``target`` with only the values it cannot do without (required ones)."""
    required = {p.name for p in target.entry.params if p.required}
    return Target(target.entry, {k: v for k, v in target.overrides.items() if k in required})


def _moved(target: Target, d: Download, path: Path, own: Needs) -> ZooError:
    kind, label = target.entry.kind, target.label
    given = _moving(target, d, path)
    said = ", ".join(f"{kind}.{k}={v!r}" for k, v in given.items()) or "values"
    same = [o.root or o.path.parent for o in own.downloads if o.name == d.name]
    folder = f"{same[0]}, where {label} keeps it here, or " if same else ""
    known = caches.known()
    ours = ", ".join(f"{c.path} ({c.name})" for c in known)
    moved = [c for c in known if same and confine.within(same[0], c.path)]
    flags = " ".join(f"--set {kind}.{k}=..." for k in given) or "those values"
    return ZooError(
        f"the bundle's {said} would put {d.name} for {label} at {path}, outside this "
        "machine's caches; zoo fetch --from writes nothing there.",
        expected=f"{d.name} inside {folder}one of this machine's caches: {ours}",
        fix=f"to install into this machine's folders, write the bundle again without {flags} "
        "(zoo fetch NAME... --to DIR)"
        + "".join(f"; or move this machine's {c.name} cache there: ${c.variable}" for c in moved)
        + f"; or give the folder yourself: zoo fetch {target.entry.qualified_name} {flags} "
        "(zoo trusts what you type, not what a bundle says: install only bundles from people "
        "you trust)",
        got=", ".join(str(v) for v in given.values()) or str(path),
    )


def _recorded_moved(
    target: Target, outside: list[tuple[Download, Path]], own: Needs, source: Path
) -> ZooError:
    kind, label = target.entry.kind, target.label
    given = {k: v for d, path in outside for k, v in _moving(target, d, path).items()}
    said = ", ".join(f"{kind}.{k}={v!r}" for k, v in given.items()) or "values"
    d, path = outside[0]
    what = d.name if path in (d.path, d.marker) else f"the data it prepares from {d.name}"
    mine = next((o for o in own.downloads if o.name == d.name), None)
    there = None if mine is None else mine.prepared if path == d.prepared else mine.path
    here = f"{there}, where {label} puts it on this machine, or " if there else ""
    known = caches.known()
    return ZooError(
        f"{source} records {said}, which would have {label} write {what} at {path}, "
        "outside this machine's caches; zoo writes nothing there.",
        expected=f"{what} inside {here}one of this machine's caches: "
        + ", ".join(f"{c.path} ({c.name})" for c in known),
        fix=f"to use this machine's folders, remove {', '.join(f'{kind}.{k}' for k in given)} "
        f"from the {kind}'s params in {source} (or set to null)"
        + "".join(_trusted(c, there, path, given) for c in known),
        got=", ".join(str(v) for v in given.values()) or str(path),
    )


def _trusted(cache: caches.Cache, there: Path | None, path: Path, given: dict[str, Any]) -> str:
    """How to make ``cache`` the recorded folder, when that is all the value changes."""
    values = [str(v) for v in given.values()]
    if there is None or len(values) != 1 or not there.is_relative_to(cache.path):
        return ""
    if Path(values[0]).expanduser().absolute() / there.relative_to(cache.path) != path:
        return ""
    return (
        f"; or, if you trust that folder, make it this machine's {cache.name} cache for the "
        f"command: {cache.variable}={values[0]} (zoo trusts what you set, not what a run records)"
    )


def _moving(target: Target, d: Download, path: Path) -> dict[str, Any]:
    """``target``'s optional values without which ``d``'s ``path`` would be elsewhere
    (all of them when no single one moves it)."""
    optional = {k: v for k, v in target.overrides.items() if k not in _here(target).overrides}
    return {k: v for k, v in optional.items() if _moves(target, k, d, path)} or optional


def _moves(target: Target, name: str, d: Download, path: Path) -> bool:
    """Whether ``d``'s ``path`` (its file, marker or prepared data) would be elsewhere
    without ``target``'s value for ``name``."""
    rest = {k: v for k, v in target.overrides.items() if k != name}
    other = needs(Target(target.entry, rest)).downloads
    return (d.name, path) not in {
        (o.name, p) for o in other for p in (o.path, o.marker, o.prepared)
    }


def _owner(target: Target) -> str:
    given = ", ".join(f"{name}={value!r}" for name, value in target.overrides.items())
    return target.label + (f" with {given}" if given else "")


def targets(registry: Registry, names: Sequence[str], sets: Sequence[str] = ()) -> list[Target]:
    """The components ``names`` stand for: component names, or recipes (their three).

    Raises:
        ZooError: a name is neither a component nor a recipe, is ambiguous, or a
            ``--set`` is malformed.
    """
    overrides: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
    for text in sets:
        kind, param, value = parse_assignment(text)
        overrides[kind][param] = value
    found: list[Target] = []
    for name in names:
        for kind, entry, given in _named(registry, name):
            target = Target(entry, {**given, **overrides[kind]})
            if target not in found:
                found.append(target)
    return found


def _named(registry: Registry, name: str) -> list[tuple[str, Entry[Component], Mapping[str, Any]]]:
    recipes = registry.recipes()
    plugin, _, short = name.rpartition(":")
    kinds = [
        kind
        for kind in KINDS
        if any(e.name == short and plugin in ("", e.plugin.name) for e in registry.entries(kind))
    ]
    if kinds:
        return [(kind, registry.get(kind, name), {}) for kind in kinds]
    if name in recipes:
        recipe = recipes[name]
        chosen = {"dataset": recipe.dataset, "backbone": recipe.backbone, "head": recipe.head}
        return [
            (kind, registry.get(kind, chosen[kind]), recipe.params.get(kind, {})) for kind in KINDS
        ]
    everything = {e.name for e in registry} | set(recipes)
    hint = closest(short, everything)
    raise ZooError(
        f"there is no dataset, backbone, head or recipe named '{name}'.",
        expected="names from `zoo list` (PLUGIN:NAME for a component works too)",
        fix=(f"did you mean {one_of(hint)}? " if hint else "") + "`zoo list` shows them all.",
        got=name,
    )


def _broken(target: Target, detail: str) -> ZooError:
    plugin = target.entry.plugin
    return ZooError(
        f"{target.label}: its downloads declaration breaks zoo's contract: {detail}",
        expected="a list of zoo.Download (docs/plugins.md, Downloads)",
        fix=f"report it to the plugin's authors ({plugin.provider}); zoo.testing.check_plugin "
        "finds it",
    )
