"""What several commands share: loading the registry, component entries as data."""

from __future__ import annotations

import argparse
from typing import Any

from zoo import console
from zoo.components import Backbone, Component, Head
from zoo.config.settings import BY_NAME, SETTINGS, Setting
from zoo.errors import ZooError
from zoo.params import Param, describe_one
from zoo.plugins import LoadOptions, load_registry
from zoo.registry import Entry, PluginInfo, Registry
from zoo.storage import caches
from zoo.storage.sizes import parse_size


def registry_from(
    args: argparse.Namespace, warn_failed: bool = True, check_caches: bool = True
) -> Registry:
    """Load plugins as the common options say; warn once per plugin that failed.

    First the cache variables are checked (:func:`zoo.storage.caches.check`), so a variable
    pointing at a file is named, not a plugin failing on it later.

    Args:
        warn_failed: ``False`` for commands that report failed plugins in full
            themselves (``zoo plugins``).
        check_caches: ``False`` for ``zoo doctor``, which reports unusable caches.
    """
    if check_caches:
        caches.check()
    registry = load_registry(
        LoadOptions(
            registry=args.registry,
            disable=args.disable_plugin,
            builtins_only=args.builtins_only,
        )
    )
    failed = [p for p in registry.plugins if p.status == "failed"] if warn_failed else []
    for plugin in failed:
        console.warning(f"plugin '{plugin.name}' ({plugin.package}) skipped: {plugin.error}")
    for warning in registry.warnings:
        console.warning(warning)
    return registry


def help_text(text: str) -> str:
    """``text`` as argparse's help: argparse formats help with ``%``, so a literal
    ``%`` (``about 1% off``) is written ``%%``."""
    return text.replace("%", "%%")


#: ``--top-k``: classes shown per image (more than a model has shows them all).
TOP_K = Param("top_k", int, minimum=1)


def checked(flag: str, value: Any, param: Param = BY_NAME["batch_size"]) -> Any:
    """``value`` given with ``flag``, checked as ``param`` declares (a batch size by
    default); ``None`` stays ``None``.

    Raises:
        ZooError: the value is out of the declared bounds.
    """
    if value is None:
        return None
    try:
        return param.coerce(value)
    except ValueError as exc:
        raise ZooError(
            f"{flag} must be {param.allowed}: {exc}.",
            expected=describe_one(param),
            fix=f"pass {flag} within those bounds, or leave it out",
            got=value,
        ) from None


def cache_max_size(registry: Registry, given: str | None, flag: str) -> int:
    """The feature cache's size limit: ``given`` (a flag's value), else the last registry
    file's ``[cache] max_size``, else :data:`zoo.train.features.store.DEFAULT_MAX_SIZE`."""
    from zoo.train.features.store import DEFAULT_MAX_SIZE

    if given is not None:
        return parse_size(given, flag)
    configured = [f.cache_max_size for f in registry.files if f.cache_max_size is not None]
    return configured[-1] if configured else DEFAULT_MAX_SIZE


def entry_json(entry: Entry[Component]) -> dict[str, Any]:
    """A component entry as plain data, for ``--json``."""
    defaults = entry.defaults
    data: dict[str, Any] = {
        "kind": entry.kind,
        "name": entry.name,
        "qualified_name": entry.qualified_name,
        "description": entry.description,
        "plugin": entry.plugin.name,
        "package": entry.plugin.package,
        "version": entry.plugin.version,
        "source": entry.plugin.source,
        "params": [
            {
                "name": p.name,
                "type": p.type_name,
                "default": defaults.get(p.name),
                "required": p.required,
                "choices": list(p.choices) if p.choices else None,
                "help": p.help,
            }
            for p in entry.params
        ],
    }
    component = entry.component
    if isinstance(component, Backbone):
        data["min_image_size"] = component.min_image_size
        data["card"] = component.card()
    if isinstance(component, Head):
        data["min_classes"] = component.min_classes
        data["max_classes"] = component.max_classes
    return data


def plugin_json(plugin: PluginInfo) -> dict[str, Any]:
    """A plugin's provenance and status as plain data, for ``--json``."""
    return {
        "name": plugin.name,
        "package": plugin.package,
        "version": plugin.version,
        "source": plugin.source,
        "location": plugin.location,
        "status": plugin.status,
        "error": plugin.error,
        "install": plugin.install,
        "components": list(plugin.components),
    }


def add_settings(group: argparse._ArgumentGroup, set_help: str) -> None:
    """Every run setting's flag, and ``--set``, in ``group`` (``zoo run``, ``zoo tune``)."""
    for setting in SETTINGS:
        _add_flag(group, setting)
    group.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KIND.PARAM=VALUE", help=set_help
    )


def _add_flag(group: argparse._ArgumentGroup, setting: Setting) -> None:
    """The flag of ``setting``; unset flags stay ``None``, so lower layers apply."""
    if setting.type is bool:
        action = "store_false" if setting.default else "store_true"
        shown = help_text(setting.flag_help or setting.help)
        group.add_argument(setting.flag, dest=setting.name, action=action, default=None, help=shown)
        return
    choices = "|".join(map(str, setting.choices)) if setting.choices else None
    group.add_argument(
        setting.flag,
        dest=setting.name,
        type=setting.type,
        metavar=setting.metavar or choices,
        help=help_text(setting.help),
    )
