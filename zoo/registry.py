"""Components by kind and name, with the plugin that gave each one."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from zoo.components import ALL_KINDS, KINDS, Backbone, Component, Dataset, Head, Observer, validate
from zoo.config.registry_file import ComponentMeta, Recipe, RegistryFile
from zoo.errors import ZooError, closest, one_of
from zoo.params import Param

#: Where a plugin came from: zoo's registry.toml, an installed package's entry point,
#: or a user's registry.toml (or an object handed to ``LoadOptions.extra``).
PluginSource = Literal["built-in", "entry point", "local"]
#: What became of a plugin; "unavailable": it lacks a package (``PluginUnavailable``).
PluginStatus = Literal["ok", "disabled", "failed", "unavailable"]
#: The component type an entry holds.
C = TypeVar("C", bound=Component, covariant=True)

if TYPE_CHECKING:
    import pluggy


def origin(package: str, version: str) -> str:
    """``"zoo 0.1.0"``: a plugin's package and version, or the package alone when the
    version is unknown (``"-"`` for local plugins, ``""``)."""
    return package if version in ("-", "") else f"{package} {version}"


@dataclass
class PluginInfo:
    """One plugin: where it came from and what became of it.

    ``error`` says why it failed, or for an unavailable plugin what it lacks, on one
    line; ``install`` is the command that gets an unavailable plugin what it lacks.
    ``components`` lists what it registered as ``"kind:name"``; a plugin that failed
    part-way or is unavailable registers nothing, and ``unavailable`` lists what it had
    offered.
    """

    name: str
    source: PluginSource
    package: str
    version: str
    location: str
    status: PluginStatus = "ok"
    error: str | None = None
    components: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    install: str | None = None

    def fail(
        self,
        error: str,
        unavailable: Iterable[str] = (),
        status: PluginStatus = "failed",
        install: str | None = None,
    ) -> None:
        self.status, self.install = status, install
        # One line: every command prints it as a single warning line.
        self.error = " ".join(error.split())
        self.unavailable = list(unavailable)

    @property
    def state(self) -> str:
        """``ok``, ``disabled``, ``failed: WHY`` or ``unavailable: WHY; INSTALL``, for tables."""
        if self.status in ("ok", "disabled"):
            return self.status
        return f"{self.status}: {self.error}" + (f"; {self.install}" if self.install else "")

    @property
    def origin(self) -> str:
        """``"zoo 0.1.0"``: the package and its version; ``"local"`` for local files."""
        return origin(self.package, self.version)

    @property
    def provider(self) -> str:
        """``"heads (zoo 0.1.0)"``: the plugin and its package, for tables."""
        return f"{self.name} ({self.origin})"


@dataclass(frozen=True)
class Entry(Generic[C]):
    """A registered component, its plugin, and what registry files say of it."""

    component: C
    plugin: PluginInfo
    meta: ComponentMeta = field(default_factory=ComponentMeta)

    @property
    def kind(self) -> str:
        return self.component.kind

    @property
    def name(self) -> str:
        return self.component.name

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin.name}:{self.component.name}"

    @property
    def description(self) -> str:
        return self.meta.description or self.component.description

    @property
    def params(self) -> tuple[Param, ...]:
        return tuple(self.component.params)

    @property
    def defaults(self) -> dict[str, Any]:
        """Declared defaults with the registry files' defaults on top (unchecked)."""
        return {p.name: p.default for p in self.params} | dict(self.meta.defaults)


@dataclass
class Registry:
    """Everything the loaded plugins registered, plus the registry files read."""

    plugins: list[PluginInfo] = field(default_factory=list)
    files: list[RegistryFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _entries: dict[str, dict[str, list[Entry[Component]]]] = field(
        default_factory=lambda: {kind: defaultdict(list) for kind in ALL_KINDS}
    )
    #: The plugins' hooks, for the hooks called after loading (``register_keras_objects``).
    plugin_manager: pluggy.PluginManager | None = field(default=None, repr=False)

    def add(self, component: Component, plugin: PluginInfo) -> None:
        """Register ``component`` for ``plugin``.

        Raises:
            ValueError: the entry is invalid, or the plugin registered the name twice.
        """
        validate(component)
        same = self._entries[component.kind][component.name]
        if any(e.plugin.name == plugin.name for e in same):
            raise ValueError(f"registers {component.kind} '{component.name}' twice")
        same.append(Entry(component, plugin))
        # In the order plugins were loaded, whichever order their hooks were called in.
        loaded = {id(p): i for i, p in enumerate(self.plugins)}
        same.sort(key=lambda e: loaded.get(id(e.plugin), len(loaded)))
        plugin.components.append(f"{component.kind}:{component.name}")

    def remove_plugin(self, plugin: PluginInfo) -> None:
        """Drop every component ``plugin`` registered (it failed part-way)."""
        for by_name in self._entries.values():
            for name in list(by_name):
                by_name[name] = [e for e in by_name[name] if e.plugin is not plugin]
                if not by_name[name]:
                    del by_name[name]
        plugin.components.clear()

    def apply_metadata(self, registry_file: RegistryFile) -> None:
        """Attach a registry file's descriptions and defaults to the components."""
        for (kind, name), meta in registry_file.components.items():
            entries = self._entries[kind].get(name)
            if not entries:
                self.warnings.append(f"{meta.source}: no {kind} named '{name}' is registered")
                continue
            for index, entry in enumerate(entries):
                merged = ComponentMeta(
                    description=meta.description or entry.meta.description,
                    defaults={**entry.meta.defaults, **meta.defaults},
                    source=meta.source,
                )
                entries[index] = Entry(entry.component, entry.plugin, merged)

    @overload
    def entries(self, kind: Literal["dataset"]) -> list[Entry[Dataset]]: ...
    @overload
    def entries(self, kind: Literal["backbone"]) -> list[Entry[Backbone]]: ...
    @overload
    def entries(self, kind: Literal["head"]) -> list[Entry[Head]]: ...
    @overload
    def entries(self, kind: Literal["observer"]) -> list[Entry[Observer]]: ...
    @overload
    def entries(self, kind: str) -> list[Entry[Component]]: ...

    def entries(self, kind: str) -> list[Entry[Any]]:
        """Every ``kind`` entry, sorted by name then plugin."""
        return sorted(
            (e for same in self._entries[kind].values() for e in same),
            key=lambda e: (e.name, e.plugin.name),
        )

    def unavailable(self, kind: str) -> list[tuple[str, PluginInfo]]:
        """``(name, plugin)`` for each ``kind`` an unavailable plugin would register."""
        offers = [(o.partition(":"), p) for p in self.plugins for o in p.unavailable]
        return [(name, p) for (k, _, name), p in offers if k == kind and p.status == "unavailable"]

    def __iter__(self) -> Iterator[Entry[Component]]:
        for kind in KINDS:
            yield from self.entries(kind)

    @overload
    def get(self, kind: Literal["dataset"], name: str) -> Entry[Dataset]: ...
    @overload
    def get(self, kind: Literal["backbone"], name: str) -> Entry[Backbone]: ...
    @overload
    def get(self, kind: Literal["head"], name: str) -> Entry[Head]: ...
    @overload
    def get(self, kind: Literal["observer"], name: str) -> Entry[Observer]: ...
    @overload
    def get(self, kind: str, name: str) -> Entry[Component]: ...

    def get(self, kind: str, name: str) -> Entry[Any]:
        """The ``kind`` called ``name`` (or ``plugin:name``); its component is of the
        kind's type (the registry checks it on registering).

        Raises:
            ZooError: the name is unknown (the message lists the closest names), or
                several plugins registered it (the message names them).
        """
        plugin_name, _, short = name.rpartition(":")
        candidates = self._entries[kind].get(short, [])
        if plugin_name:
            candidates = [e for e in candidates if e.plugin.name == plugin_name]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise self._unknown((kind,), name)
        raise ZooError(
            f"the {kind} name '{name}' is ambiguous: plugins "
            + " and ".join(f"'{e.plugin.name}' ({e.plugin.package})" for e in candidates)
            + " both register it.",
            expected="a name exactly one plugin registers",
            fix="use the qualified name: " + " or ".join(e.qualified_name for e in candidates),
            got=name,
        )

    def find(self, name: str) -> list[Entry[Component]]:
        """Every entry of any kind called ``name`` (or ``plugin:name``).

        Raises:
            ZooError: nothing is called that; the message lists the closest names, or
                names the plugin that failed to load and why.
        """
        plugin, _, short = name.rpartition(":")
        found = [
            e
            for kind in KINDS
            for e in self._entries[kind].get(short, [])
            if not plugin or e.plugin.name == plugin
        ]
        if found:
            return found
        raise self._unknown(KINDS, name)

    def recipes(self) -> dict[str, Recipe]:
        """Recipes from every registry file; a later file wins on a shared name."""
        merged: dict[str, Recipe] = {}
        for registry_file in self.files:
            merged.update(registry_file.recipes)
        return merged

    def recipe(self, name: str) -> Recipe:
        recipes = self.recipes()
        if name in recipes:
            return recipes[name]
        hint = closest(name, recipes)
        raise ZooError(
            f"there is no recipe named '{name}'.",
            expected=f"one of {one_of(recipes)}",
            fix=(f"did you mean '{hint[0]}'? " if hint else "") + "`zoo list recipes` shows them.",
            got=name,
        )

    def _unknown(self, kinds: Sequence[str], name: str) -> ZooError:
        """Why ``name`` is not registered: a failed or disabled plugin, or a typo."""
        plugin_name, _, short = name.rpartition(":")
        what = kinds[0] if len(kinds) == 1 else "component"
        if plugin_name and plugin_name not in {p.name for p in self.plugins}:
            return _no_plugin(plugin_name, name, [p.name for p in self.plugins])
        offered = {f"{kind}:{short}" for kind in kinds}
        at_fault = [
            p
            for p in self.plugins
            if p.status != "ok"
            and (p.name == plugin_name if plugin_name else offered & set(p.unavailable))
        ]
        if at_fault:
            return _unavailable(what, name, at_fault)
        names = sorted({n for kind in kinds for n in self._entries[kind]})
        hint = closest(short, names)
        listing = f"zoo list {what}s" if len(kinds) == 1 else "zoo list"
        return ZooError(
            f"there is no {what} named '{name}'.",
            expected=f"one of {one_of(names)}"
            if len(kinds) == 1
            else "a dataset, backbone or head name (or PLUGIN:NAME)",
            fix=(f"did you mean {one_of(hint)}? " if hint else "")
            + f"`{listing}` shows them all."
            + self._suspects(),
            got=name,
        )

    def _suspects(self) -> str:
        """A hint naming the plugins that were not loaded and might provide a name."""
        failed = [p for p in self.plugins if p.status == "failed"]
        disabled = [p.name for p in self.plugins if p.status == "disabled"]
        hint = ""
        if failed:
            hint += " These plugins failed to load and may provide it: " + "; ".join(
                f"'{p.name}' ({p.origin}) {p.error}" for p in failed
            )
        if disabled:
            hint += f" Disabled plugins may provide it too: {one_of(disabled)}."
        return hint


def _no_plugin(plugin_name: str, name: str, plugins: Sequence[str]) -> ZooError:
    hint = closest(plugin_name, plugins)
    return ZooError(
        f"there is no plugin named '{plugin_name}' (in '{name}').",
        expected=f"PLUGIN:NAME with PLUGIN one of {one_of(plugins)}",
        fix=(f"did you mean {one_of(hint)}? " if hint else "") + "`zoo plugins` lists them all.",
        got=name,
    )


def _unavailable(what: str, name: str, at_fault: Sequence[PluginInfo]) -> ZooError:
    """``name`` belongs to plugins that failed to load, lack a package, or are disabled."""
    first = at_fault[0]
    if first.status == "disabled":
        return ZooError(
            f"the {what} '{name}' is unavailable: plugin '{first.name}' is disabled.",
            expected="an enabled plugin",
            fix=f"remove '{first.name}' from --disable-plugin and $ZOO_DISABLE_PLUGINS",
            got=name,
        )
    if first.status == "unavailable":
        return ZooError(
            f"the {what} '{name}' is unavailable: plugin '{first.name}' ({first.origin}), "
            f"which provides it, {first.error}.",
            expected="the packages the plugin needs, installed",
            fix=f"install them: {first.install}" if first.install else "install them",
            got=name,
        )
    return ZooError(
        f"the {what} '{name}' is unavailable: "
        + "; ".join(
            f"plugin '{p.name}' ({p.origin}), which provides it, {p.error}" for p in at_fault
        ),
        expected="a plugin that loads without errors",
        fix=f"fix or upgrade the plugin, or choose another {what}; "
        "`zoo plugins` shows every plugin's status",
        got=name,
    )
