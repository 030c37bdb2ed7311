"""Loading plugins: built-ins, installed packages, and a user's local modules.

Order: the built-in plugins named in zoo's registry.toml (the modules of
``zoo.builtins``), then every installed distribution's entry points in the group
``zoo``, then the plugins named in the user's registry.toml (``--registry PATH``, else
``$ZOO_REGISTRY``, else ``./registry.toml``). Hooks are called through pluggy, one
plugin at a time (``subset_hook_caller``), so a plugin's failure is its own and each
component is recorded with the plugin that registered it.

A plugin that fails to import, raises inside a hook, registers an invalid component or
implements a hook zoo does not have is marked failed and skipped, with nothing it
registered left behind; the others load. A plugin that raises ``PluginUnavailable`` (it
needs a package that is not installed) is skipped the same way but marked unavailable,
with the command that installs what it needs. Plugin names are unique: a plugin whose
name is taken by one loaded earlier (built-ins load first) is marked failed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import types
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from zoo import hookspecs
from zoo._version import __version__
from zoo.config.registry_file import RegistryFile, read_registry_file
from zoo.errors import PluginUnavailable, ZooError, closest, describe_error, one_of
from zoo.registry import PluginInfo, PluginSource, Registry

ENTRY_POINT_GROUP = "zoo"
#: The package of zoo's built-in plugins (zoo/builtins/__init__.py).
BUILTIN_PACKAGE = "zoo.builtins"
#: The package a plugin file named by path in a user's registry.toml is imported into.
LOCAL_PACKAGE = "zoo_local_plugins"
#: The hooks called once per plugin while loading, in this order.
_HOOKS = ("register_datasets", "register_backbones", "register_heads", "register_observers")
#: Every hook: ``register_keras_objects`` is called only when a saved model is loaded.
_ALL_HOOKS = (*_HOOKS, "register_keras_objects")
#: What a broken plugin may raise without taking zoo down: a plugin calling
#: ``sys.exit`` at import is broken too. KeyboardInterrupt still stops zoo.
PLUGIN_ERRORS = (Exception, SystemExit)


@dataclass(frozen=True)
class LoadOptions:
    """What ``load_registry`` loads.

    Args:
        registry: The user's registry file; ``None`` looks at ``$ZOO_REGISTRY`` and
            then ``./registry.toml``.
        disable: Plugin names to skip (``--disable-plugin``, ``$ZOO_DISABLE_PLUGINS``).
        builtins_only: Load zoo's own plugins and nothing else (for debugging).
        extra: Plugin objects (modules, classes, instances) to load last, as local
            plugins named after the module or class; how ``zoo.testing`` loads a
            plugin under test.
    """

    registry: str | os.PathLike[str] | None = None
    disable: Collection[str] = ()
    builtins_only: bool = False
    extra: Sequence[object] = ()


def load_registry(options: LoadOptions | None = None) -> Registry:
    """Load every plugin and return what they registered.

    Raises:
        ZooError: a registry file is malformed, or the file given does not exist.
    """
    options = options or LoadOptions()
    disabled = set(options.disable) | _env_list("ZOO_DISABLE_PLUGINS")
    loader = _Loader(disabled)
    builtin = read_registry_file(builtin_registry_path())
    loader.load_file(builtin, source="built-in")
    if not options.builtins_only:
        loader.load_entry_points()
        user = user_registry_path(options.registry)
        if user is not None:
            user_file = read_registry_file(user)
            # zoo's own registry, met again in a checkout: the built-ins are loaded.
            if not user_file.builtin:
                loader.load_file(user_file, source="local")
    for plugin in options.extra:
        loader.load_object(plugin)
    registry = loader.finish()
    if not options.builtins_only:
        registry.warnings += _unmatched(disabled, [p.name for p in registry.plugins])
    return registry


def builtin_registry_path() -> Path:
    """zoo's own registry.toml: packaged inside zoo, or at the root of a checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "builtins" / "registry.toml", package.parent / "registry.toml"):
        if candidate.is_file():
            return candidate
    raise RuntimeError(f"zoo's built-in registry.toml is missing next to {package}")


def user_registry_path(given: str | os.PathLike[str] | None) -> Path | None:
    """The user's registry file, or ``None`` when there is none.

    Raises:
        ZooError: ``given`` (or ``$ZOO_REGISTRY``) names a file that does not exist.
    """
    explicit = given or os.environ.get("ZOO_REGISTRY")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            origin = "--registry" if given else "ZOO_REGISTRY"
            raise ZooError(
                f"the registry file given by {origin} does not exist.",
                expected="the path of a registry.toml file",
                fix=f"create it, or correct {origin}",
                got=str(path),
            )
        return path
    local = Path.cwd() / "registry.toml"
    return local if local.is_file() else None


def _env_list(name: str) -> set[str]:
    return {item.strip() for item in os.environ.get(name, "").split(",") if item.strip()}


def _unmatched(disabled: Collection[str], plugins: Sequence[str]) -> list[str]:
    """Warnings for names to disable that no plugin has: a typo disables nothing."""
    warnings = []
    for name in sorted(set(disabled) - set(plugins)):
        hint = closest(name, plugins)
        warnings.append(
            f"--disable-plugin/ZOO_DISABLE_PLUGINS names '{name}', but no plugin is called that"
            + (f"; did you mean {one_of(hint)}?" if hint else "; `zoo plugins` lists them")
        )
    return warnings


class _Loader:
    def __init__(self, disabled: set[str]) -> None:
        self.pm = pluggy.PluginManager("zoo")
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.disabled = disabled

    def load_file(self, registry_file: RegistryFile, source: PluginSource) -> None:
        self.registry.files.append(registry_file)
        for entry in registry_file.plugins:
            self._load_one(entry, registry_file.path, source)

    def _load_one(self, entry: str, registry_path: Path, source: PluginSource) -> None:
        is_path = entry.endswith(".py") or "/" in entry
        name = Path(entry).stem if is_path else entry.rpartition(".")[2]
        if source == "built-in":
            package, version = "zoo", __version__
        else:
            package, version = "local", "-"
        info = PluginInfo(name, source, package, version, location=entry)
        if is_path:
            path = (registry_path.parent / entry).resolve()
            info.location = str(path)
            self._add(info, lambda: _import_path(path, LOCAL_PACKAGE))
        else:
            self._add(info, lambda: importlib.import_module(entry))

    def load_entry_points(self) -> None:
        # A distribution found twice on sys.path is loaded once, as importlib does; two
        # distributions with the same plugin name clash, and the second one fails.
        seen = set()
        for dist in importlib.metadata.distributions():
            dist_name = dist.metadata["Name"] or "?"
            if _normalise(dist_name) in seen:
                continue
            seen.add(_normalise(dist_name))
            for ep in dist.entry_points:
                if ep.group == ENTRY_POINT_GROUP:
                    info = PluginInfo(ep.name, "entry point", dist_name, dist.version, ep.value)
                    self._add(info, ep.load)

    def load_object(self, plugin: object) -> None:
        name = getattr(plugin, "__name__", type(plugin).__name__).rpartition(".")[2]
        location = getattr(plugin, "__file__", None) or repr(plugin)
        self._add(PluginInfo(name, "local", "local", "-", location), lambda: plugin)

    def _add(self, info: PluginInfo, load: Any) -> None:
        taken = next((p for p in self.registry.plugins if p.name == info.name), None)
        self.registry.plugins.append(info)
        if info.name in self.disabled:
            info.status = "disabled"
            return
        if taken is not None and taken.status == "ok":
            info.fail(
                f"is named like plugin '{taken.name}' ({taken.origin}, {taken.source}), "
                "loaded first; plugin names must be unique, so one of "
                "them must be renamed (the entry point name, or the module's file name)"
            )
            return
        try:
            plugin = load()
            self.pm.register(plugin, name=info.name)
        except PluginUnavailable as exc:
            info.fail(exc.reason, status="unavailable", install=exc.install)
            return
        except PLUGIN_ERRORS as exc:
            info.fail(f"could not be loaded: {describe_error(exc)}")
            return
        unknown = _unknown_hooks(self.pm, plugin)
        if unknown:
            self.pm.unregister(plugin)
            info.fail(f"implements hooks zoo does not have: {_misspelt(unknown)}")
            return

    def finish(self) -> Registry:
        self.pm.check_pending()
        self.registry.plugin_manager = self.pm
        by_name = {p.name: p for p in self.registry.plugins if p.status == "ok"}
        # Hook by hook, each plugin on its own, in pluggy's order (tryfirst, trylast);
        # a plugin that fails is dropped whole and is not called again.
        for hook in _HOOKS:
            for plugin in _call_order(self.pm, hook):
                if self.pm.is_registered(plugin):
                    self._call(hook, plugin, by_name[self.pm.get_name(plugin) or ""])
        for registry_file in self.registry.files:
            self.registry.apply_metadata(registry_file)
        return self.registry

    def _call(self, hook: str, plugin: Any, info: PluginInfo) -> None:
        offered: list[str] = []

        def register(component: Any) -> None:
            kind, name = getattr(component, "kind", None), getattr(component, "name", None)
            if isinstance(kind, str) and isinstance(name, str):
                offered.append(f"{kind}:{name}")
            self.registry.add(component, info)

        try:
            call_one(self.pm, hook, plugin, register=register)
        except PLUGIN_ERRORS as exc:
            # All or nothing: what it registered before failing is dropped, but
            # remembered, so asking for it names this plugin and the cause.
            offered = list(dict.fromkeys([*info.components, *offered]))
            self.registry.remove_plugin(info)
            self.pm.unregister(plugin)
            if isinstance(exc, PluginUnavailable):
                info.fail(exc.reason, offered, status="unavailable", install=exc.install)
            else:
                info.fail(f"failed while registering components: {describe_error(exc)}", offered)


def call_one(pm: pluggy.PluginManager, hook: str, plugin: Any, **kwargs: Any) -> list[Any]:
    """Call ``plugin``'s implementations of ``hook`` alone, its wrappers included.

    Through pluggy's ``subset_hook_caller``: one plugin's failure is its own, and every
    component it registers is attributed to it.
    """
    others = [p for p in pm.get_plugins() if p is not plugin]
    return pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs)


def _call_order(pm: pluggy.PluginManager, hook: str) -> list[Any]:
    """The plugins implementing ``hook``, in the order pluggy calls them."""
    impls = getattr(pm.hook, hook).get_hookimpls()  # pluggy calls the last one first
    ordered = [i.plugin for i in reversed(impls) if not (i.hookwrapper or i.wrapper)]
    ordered += [i.plugin for i in reversed(impls)]  # plugins with only wrappers, last
    return list(dict.fromkeys(ordered))


def _misspelt(unknown: Sequence[str]) -> str:
    """``register_backbone (did you mean register_backbones?)`` for each unknown hook."""
    parts = []
    for name in unknown:
        hint = closest(name, _ALL_HOOKS, n=1)
        parts.append(f"{name} ({f'did you mean {hint[0]}?' if hint else one_of(_ALL_HOOKS)})")
    return ", ".join(parts)


def _unknown_hooks(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """The hooks ``plugin`` implements that zoo has no spec for, as pluggy parses them."""
    unknown = []
    for name in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, name)
        if opts is None or opts.get("optionalhook"):
            continue
        hook = opts.get("specname") or name
        if hook not in _ALL_HOOKS:
            unknown.append(hook)
    return unknown


def keras_objects(registry: Registry, plugin: str) -> list[Any]:
    """The classes and functions ``plugin`` declares with ``register_keras_objects``.

    zoo calls the hook only when it loads a saved model that ``plugin`` helped build.

    Raises:
        TypeError: the plugin registered something that is not a class or function.
        Exception: whatever the plugin's hook raised.
    """
    pm = registry.plugin_manager
    target = pm.get_plugin(plugin) if pm is not None else None
    found: list[Any] = []
    if pm is None or target is None:
        return found
    call_one(pm, "register_keras_objects", target, register=found.append)
    for obj in found:
        if not callable(obj) or not hasattr(obj, "__name__"):
            raise TypeError(f"register_keras_objects got {obj!r}, not a class or function")
    return found


def _import_path(path: Path, package: str) -> types.ModuleType:
    """Import the file ``path`` as ``package.<stem>``, so relative imports work."""
    parent = sys.modules.get(package)
    if parent is None:
        parent = types.ModuleType(package)
        parent.__path__ = []
        sys.modules[package] = parent
    if str(path.parent) not in parent.__path__:
        parent.__path__.append(str(path.parent))
    name = f"{package}.{path.stem}"
    cached = sys.modules.get(name)
    if cached is not None and getattr(cached, "__file__", None) == str(path):
        return cached
    if not path.is_file():
        raise FileNotFoundError(f"no plugin file at {path}")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _normalise(dist_name: str) -> str:
    """A distribution name as the package index compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", dist_name).lower()
