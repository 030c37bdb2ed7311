"""Finding the Keras classes a saved model needs, plugin by plugin, before Keras loads it.

Keras finds a class when it loads a model only if the class is registered in this
process, or lives in ``keras`` or ``keras_hub``. For each object of the manifest not
registered yet, :class:`ClassFinder` in turn imports the recorded module, asks the
plugin's ``register_keras_objects`` hook, and builds the component again, cheaply; what
is still missing is an error naming the plugin, package and version that trained it.

The manifest is data someone else may have written, so it never chooses what runs: a
recorded module is imported only if it belongs to the package of the plugin that built
the component (or to zoo), as that loaded plugin's own module and file say, and only if
each file the import would execute lies inside that package (:class:`PluginPackage`).
A module refused is not imported; it is an error only if neither the plugin's hook nor
the rebuild registers its classes (a plugin's builder may import a library's layers).
"""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError, describe_error
from zoo.params import resolve
from zoo.plugins import BUILTIN_PACKAGE as BUILTINS
from zoo.plugins import LOCAL_PACKAGE as LOCAL
from zoo.plugins import PLUGIN_ERRORS, keras_objects, load_registry
from zoo.results.manifest import MANIFEST, Component, KerasObject, Manifest

if TYPE_CHECKING:
    from zoo.registry import PluginInfo, Registry


class ClassFinder:
    """Makes the manifest's Keras objects findable by Keras, plugin by plugin."""

    def __init__(self, manifest: Manifest, registry: Registry | None, source: Path) -> None:
        self.manifest = manifest
        self._registry = registry
        self.source = source
        self.custom: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.failures: dict[str, str] = {}  # by component: why its classes stay missing
        self.refused: dict[str, ZooError] = {}  # by object name: a module zoo did not import

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = load_registry()
        return self._registry

    def missing(self) -> list[KerasObject]:
        import keras

        return [
            o
            for o in self.manifest.keras_objects
            if keras.saving.get_registered_object(o.name, custom_objects=self.custom) is None
        ]

    def custom_objects(self) -> dict[str, Any]:
        """Register what is missing; return the objects plugins declared through the hook."""
        missing = self.missing()
        kinds = list(dict.fromkeys(o.component for o in missing))
        for obj in missing:
            self._import(obj)
        for kind in kinds:
            self._declared(kind)
        for kind in dict.fromkeys(o.component for o in self.missing()):
            self._rebuild(kind)
        still = self.missing()
        # A refused module is an error only if nothing else registered its classes.
        refused = [self.refused[o.name] for o in still if o.name in self.refused]
        if refused:
            raise refused[0]
        if still:
            raise self._unavailable(still)
        for kind in kinds:
            if self._version_changed(kind):
                component = self.manifest.components[kind]
                self.warnings.append(
                    f"the {kind} '{component.name}' was built by {component.provider}; "
                    f"the plugin {self._difference(kind)}"
                )
        return self.custom

    def _plugin(self, kind: str) -> PluginInfo | None:
        name = self.manifest.components[kind].plugin
        return next((p for p in self.registry.plugins if p.name == name), None)

    def _version_changed(self, kind: str) -> bool:
        component, plugin = self.manifest.components[kind], self._plugin(kind)
        return plugin is not None and (plugin.package, plugin.version) != (
            component.package,
            component.version,
        )

    def _difference(self, kind: str) -> str | None:
        """How the plugin loaded now differs from the one that built ``kind``."""
        plugin = self._plugin(kind)
        if plugin is None:
            return "is not installed"
        if plugin.status == "disabled":
            return "is disabled (--disable-plugin or ZOO_DISABLE_PLUGINS)"
        if plugin.status != "ok":
            return f"failed to load: {plugin.error}"
        if self._version_changed(kind):
            return f"is {plugin.origin} now"
        return self.failures.get(kind)

    def _loaded(self, kind: str) -> PluginInfo | None:
        """The plugin that built ``kind``, if it is loaded: zoo runs no code of others."""
        plugin = self._plugin(kind)
        return plugin if plugin is not None and plugin.status == "ok" else None

    def _import(self, obj: KerasObject) -> None:
        # Once plugins are loaded, a local plugin's package (zoo_local_plugins) exists.
        plugin = self._loaded(obj.component)
        if not obj.module or obj.module == "__main__" or plugin is None:
            return
        refused = self._refuse(obj, obj.module, plugin)
        if refused is not None:
            self.refused[obj.name] = refused
            return
        try:
            importlib.import_module(obj.module)
        except PLUGIN_ERRORS as exc:
            self.failures[obj.component] = f"failed to import {obj.module}: {describe_error(exc)}"

    def _refuse(self, obj: KerasObject, module: str, plugin: PluginInfo) -> ZooError | None:
        """Why ``module`` is not imported, unless importing it runs the plugin's own files
        (or zoo's) only."""
        pm = self.registry.plugin_manager
        own = PluginPackage.of(pm.get_plugin(plugin.name) if pm is not None else None)
        why = _refused(module, [p for p in (own, PluginPackage.zoo()) if p is not None])
        if why is None:
            return None
        component = self.manifest.components[obj.component]
        where = (
            f"{own.prefix}, in {' or '.join(map(str, own.roots))}"
            if own is not None
            else "its package unknown"
        )
        return ZooError(
            f"{self.source}: its {MANIFEST} names the module '{module}' for the "
            f"{obj.component} '{component.name}' of plugin '{plugin.name}', but {why}. "
            "zoo imports only the modules of the plugin that built a component, so that "
            "opening a model runs no code of the model's choosing.",
            expected=f"a module of plugin '{plugin.name}' ({where}) or of zoo",
            fix="train the run again, or get the original file from whoever trained it (a "
            "plugin whose classes live in another package declares them with its "
            "register_keras_objects hook)",
            got=module,
        )

    def _declared(self, kind: str) -> None:
        import keras

        from zoo.model.assemble import ComponentError

        plugin = self._loaded(kind)
        if plugin is None:
            return
        try:
            declared = keras_objects(self.registry, plugin.name)
        except PLUGIN_ERRORS as exc:
            raise ComponentError(
                f"plugin {plugin.provider} failed in register_keras_objects: "
                f"{describe_error(exc)}.",
                expected="the hook to register classes or functions",
                fix="report it to the plugin's authors (run with --verbose for the traceback)",
            ) from exc
        for obj in declared:
            self.custom[keras.saving.get_registered_name(obj)] = obj

    def _rebuild(self, kind: str) -> None:
        """Build ``kind`` again, for the registrations its builder runs; discard it."""
        import keras

        from zoo.model.assemble import call_builder

        component = self.manifest.components[kind]
        try:
            entry = self.registry.get(kind, f"{component.plugin}:{component.name}")
        except ZooError:
            return  # the plugin is missing or failed: _difference says so
        try:
            params = resolve(kind, entry.name, entry.params, [(MANIFEST, component.params)])
            if kind == "head":
                features = keras.Input(tuple(self.manifest.feature_shape[1:]))
                call_builder(entry, features, len(self.manifest.class_names), params)
            else:
                size = self.manifest.image_size
                call_builder(entry, (size, size, 3), params)
        except ZooError as exc:
            self.failures[kind] = f"could not build it again to register them: {exc.what}"

    def _unavailable(self, missing: list[KerasObject]) -> ZooError:
        kinds = list(dict.fromkeys(o.component for o in missing))
        parts = []
        for kind in kinds:
            component = self.manifest.components[kind]
            names = ", ".join(_describe(o) for o in missing if o.component == kind)
            why = self._difference(kind) or "does not register them any more"
            parts.append(
                f"{names}, of the {kind} '{component.name}' that {component.provider} "
                f"built; that plugin {why}"
            )
        return ZooError(
            "the model needs Keras classes that no loaded plugin provides: "
            + "; ".join(parts)
            + ".",
            expected="the plugins that trained the model, loaded: "
            + ", ".join(self.manifest.components[k].provider for k in kinds),
            fix=" ".join(_install_hint(self.manifest.components[k]) for k in kinds),
        )

    def cannot_load(self, path: Path, exc: Exception) -> ZooError:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kinds = list(dict.fromkeys(o.component for o in self.manifest.keras_objects))
        if not kinds:
            keras_version = self.manifest.written_by.get("keras", "?")
            return ZooError(
                f"Keras cannot load {path}: {detail}",
                expected=f"a model Keras {keras_version} saved, with Keras's own layers only",
                fix=f"load it with Keras {keras_version}, or train the run again",
                got=str(path),
            )
        built = "; ".join(
            f"the {k} '{self.manifest.components[k].name}' by "
            f"{self.manifest.components[k].provider}"
            + (f" (the plugin {d})" if (d := self._difference(k)) else "")
            for k in kinds
        )
        return ZooError(
            f"Keras cannot load {path}: {detail}",
            expected=f"the plugins' Keras classes as they were when the model was saved: {built}",
            fix=" ".join(_install_hint(self.manifest.components[k]) for k in kinds),
            got=str(path),
        )


def _describe(obj: KerasObject) -> str:
    where = f"{obj.module}.{obj.qualname}" if obj.module and obj.qualname else obj.module
    return f"'{obj.name}'" + (f" ({where})" if where else "")


def _install_hint(component: Component) -> str:
    if component.package == "local":
        return (
            f"Load the local plugin '{component.plugin}' as when it trained: run zoo from "
            "the folder whose registry.toml lists it, or pass --registry PATH."
        )
    if component.package in ("zoo", "?"):
        return f"Install zoo {component.version}, which trained it."
    pinned = f"{component.package}=={component.version}"
    return f"Install the version that trained it: pip install '{pinned}'."


@dataclass(frozen=True)
class PluginPackage:
    """The modules a loaded plugin owns: those named ``prefix`` or ``prefix.*``, whose
    files lie under one of ``roots``.

    It is read from the plugin's own loaded module, never from a model's manifest: the
    top regular package holding it (``zoo_plugin_example`` for
    ``zoo_plugin_example.plugin``), zoo's built-in plugins (``zoo.builtins``, in the
    folders of its path), the folder of a plugin loaded by path (``zoo_local_plugins``),
    or the plugin's one file.
    """

    prefix: str
    roots: tuple[Path, ...]

    @classmethod
    def of(cls, plugin: object) -> PluginPackage | None:
        """The package of ``plugin`` (a module, a class or an instance), if it has a file."""
        if isinstance(plugin, types.ModuleType):
            name: str | None = plugin.__name__
        else:
            name = getattr(plugin, "__module__", None)
        module = sys.modules.get(name or "")
        file = getattr(module, "__file__", None)
        if not name or not file:
            return None
        path = Path(file).resolve()
        parts = name.split(".")
        if name.startswith(f"{BUILTINS}."):
            folders = getattr(sys.modules.get(BUILTINS), "__path__", [path.parent])
            return cls(BUILTINS, tuple(Path(folder).resolve() for folder in folders))
        if parts[0] == LOCAL:  # loaded by path: zoo.plugins
            return cls(LOCAL, (path.parent,))
        # The folder of each package above the module: pkg/sub/mod.py, pkg/sub/, pkg/.
        node = path.parent if path.name == "__init__.py" else path
        folders = [node, *node.parents][: len(parts)][::-1]
        for depth, folder in enumerate(folders, start=1):
            if folder.name == parts[depth - 1] and (folder / "__init__.py").is_file():
                return cls(".".join(parts[:depth]), (folder,))
        return cls(name, (path,))

    @classmethod
    def zoo(cls) -> PluginPackage:
        """zoo itself, whose layers (``zoo.model.layers``) any plugin may use."""
        return cls("zoo", (Path(__file__).resolve().parents[1],))

    def names(self, module: str) -> bool:
        return module == self.prefix or module.startswith(self.prefix + ".")

    def outside(self, module: str) -> str | None:
        """Why importing ``module`` would run a file outside this package, or ``None``.

        Each package on the way is found as the import would find it, without importing
        anything: a module of the same name elsewhere on ``sys.path`` (a file in the
        current folder, a folder of a run directory) is refused before it runs.
        """
        parts = module.split(".")
        own = self.prefix.count(".")  # the index of the prefix in parts
        locations: list[str] | None = None
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name in sys.modules:
                loaded = sys.modules[name]
                origin = getattr(loaded, "__file__", None)
                locations = getattr(loaded, "__path__", None)
            else:
                spec = _find_spec(name, locations)
                if spec is None:
                    return "no such module is in that plugin's package"
                origin = spec.origin if spec.has_location else None
                locations = spec.submodule_search_locations
            if depth > own and not self._holds(origin, allow_none=depth == own + 1):
                return f"it is not a file of that plugin's package: {origin or name}"
            if locations is None and depth < len(parts):
                return f"{name} is not a package"
        return None

    def _holds(self, origin: str | None, allow_none: bool) -> bool:
        if origin is None:
            return allow_none  # the prefix of a plugin loaded by path has no file
        path = Path(origin).resolve()
        return any(path == root or root in path.parents for root in self.roots)


def _refused(module: str, packages: list[PluginPackage]) -> str | None:
    """Why ``module`` may not be imported for a plugin owning ``packages``, or ``None``."""
    if "__main__" in module.split("."):
        return "a __main__ module is a program, run by importing it"
    owner = next((p for p in packages if p.names(module)), None)
    if owner is None:
        return "it is not a module of that plugin's package"
    return owner.outside(module)


def _find_spec(name: str, path: list[str] | None) -> ModuleSpec | None:
    """How ``import`` would find ``name`` (its parent's ``path`` given), running nothing.

    ``importlib.util.find_spec`` imports the parent packages; this asks the finders only.
    """
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        spec = find(name, path) if find is not None else None
        if spec is not None:
            return spec
    return None
