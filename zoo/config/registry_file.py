"""registry.toml files: plugin lists, run defaults, component defaults and recipes.

A registry file has five optional tables::

    [plugins]
    load = ["plugins/shapes.py", "my_package.zoo_plugin"]   # paths or module names

    [run]                                # defaults for every run
    epochs = 7

    [components.backbone.resnet50]       # metadata and parameter defaults
    description = "ResNet50, frozen"
    defaults = { weights = "imagenet" }

    [cache]                              # the feature cache folder's size limit
    max_size = "10GB"

    [recipes.tutorial_transfer]          # a named dataset/backbone/head triple
    dataset = "cats_vs_dogs"
    backbone = "resnet50"
    head = "gap_sigmoid"
    epochs = 7
    params = { backbone = { weights = "imagenet" } }

zoo's own registry.toml and a user's have the same shape.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from zoo.components import ALL_KINDS, KINDS
from zoo.config.settings import BY_NAME
from zoo.errors import ZooError, closest
from zoo.storage import os_errors
from zoo.storage.sizes import parse_size

_TOP_KEYS = {"registry", "plugins", "run", "cache", "components", "recipes"}
_COMPONENT_KEYS = {"description", "defaults"}
_RECIPE_KEYS = {"description", "dataset", "backbone", "head", "params", *BY_NAME}


@dataclass(frozen=True)
class Recipe:
    """A named dataset/backbone/head triple with its settings."""

    name: str
    dataset: str
    backbone: str
    head: str
    description: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True)
class ComponentMeta:
    """What a registry file says about one component."""

    description: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True)
class RegistryFile:
    """One parsed registry.toml."""

    path: Path
    builtin: bool = False
    plugins: tuple[str, ...] = ()
    run: Mapping[str, Any] = field(default_factory=dict)
    components: Mapping[tuple[str, str], ComponentMeta] = field(default_factory=dict)
    recipes: Mapping[str, Recipe] = field(default_factory=dict)
    #: ``[cache] max_size``: bytes the feature cache may hold (``None``: not set here).
    cache_max_size: int | None = None


def read_registry_file(path: Path) -> RegistryFile:
    """Parse and check ``path``.

    Raises:
        ZooError: the file is missing, is not valid TOML, or has unknown or badly
            typed entries; the message names the file and the line.
    """
    with os_errors.explained(
        "read the registry file",
        path,
        expected="a readable TOML file",
        fix="check the path given with --registry or ZOO_REGISTRY",
    ):
        raw = path.read_bytes()
    text = _decoded(path, raw)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ZooError(
            f"{path}: not valid TOML: {exc}.",
            expected="a registry file in TOML (see zoo's own registry.toml)",
            fix=f"correct the syntax of {path} at the line named",
        ) from None
    return _Parser(path, text).parse(data)


def read_recipe_file(path: Path) -> Recipe:
    """The one recipe of a recipe file (``zoo run --recipe FILE.toml``; ``zoo tune``
    writes one for its winner): a registry file holding ``[recipes]`` and nothing else,
    so that a file from someone else can name what to train but load no plugin and
    change no default.

    Raises:
        ZooError: the file cannot be read, or holds more or less than one recipe.
    """
    if not path.is_file():
        raise ZooError(
            f"there is no recipe file {path}.",
            expected="a recipe file (.toml), such as the recipe.toml zoo tune writes",
            fix="check the path given with --recipe, or name a registry file's recipe",
            got=str(path),
        )
    parsed = read_registry_file(path)
    extra = {
        "[plugins]": parsed.plugins,
        "[run]": parsed.run,
        "[components]": parsed.components,
        "[cache]": parsed.cache_max_size is not None,
        "[registry]": parsed.builtin,
    }
    found = [name for name, value in extra.items() if value]
    if found or len(parsed.recipes) != 1:
        raise ZooError(
            f"{path}: a recipe file holds one [recipes.NAME] table and nothing else.",
            expected="one recipe, as zoo tune writes (recipe.toml in its study folder)",
            fix="give a recipe file, or name a registry file's recipe: zoo run --recipe NAME",
            got=", ".join(found) or f"{len(parsed.recipes)} recipes",
        )
    return next(iter(parsed.recipes.values()))


def _decoded(path: Path, raw: bytes) -> str:
    """``raw`` as UTF-8 text, as TOML must be.

    Raises:
        ZooError: a byte is not UTF-8 (a binary file, another encoding), naming its line.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ZooError(
            f"{path}:{line}: not a text file in UTF-8 (byte {raw[exc.start]:#04x} at "
            f"offset {exc.start}).",
            expected="a registry file in TOML, which is UTF-8 text",
            fix=f"save {path.name} as UTF-8, or point --registry or ZOO_REGISTRY at the right file",
            got=str(path),
        ) from None


class _Parser:
    """Checks a decoded registry file, naming the file and line of every problem."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def parse(self, data: Mapping[str, Any]) -> RegistryFile:
        self._keys(data, _TOP_KEYS, "the top level", "")
        about = self._table(data.get("registry", {}), "registry")
        self._keys(about, {"builtin"}, "[registry]", "registry")
        return RegistryFile(
            path=self.path,
            builtin=about.get("builtin") is True,
            plugins=self._plugins(data.get("plugins", {})),
            run=self._settings(data.get("run", {}), "run", set()),
            cache_max_size=self._cache(data.get("cache", {})),
            components=self._components(data.get("components", {})),
            recipes={
                name: self._recipe(name, body)
                for name, body in self._table(data.get("recipes", {}), "recipes").items()
            },
        )

    def _plugins(self, table: Any) -> tuple[str, ...]:
        self._keys(self._table(table, "plugins"), {"load"}, "[plugins]", "plugins")
        entries = table.get("load", [])
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            self._fail("[plugins] load must be a list of strings", "load", entries)
        return tuple(entries)

    def _cache(self, table: Any) -> int | None:
        self._keys(self._table(table, "cache"), {"max_size"}, "[cache]", "cache")
        if "max_size" not in table:
            return None
        try:
            return parse_size(table["max_size"], "[cache] max_size")
        except ZooError as exc:
            what = exc.what.rstrip(".")
            self._fail(what, "cache.max_size", table["max_size"], expected=exc.expected)

    def _components(self, table: Any) -> dict[tuple[str, str], ComponentMeta]:
        self._keys(self._table(table, "components"), set(ALL_KINDS), "[components]", "components")
        found = {}
        for kind, entries in table.items():
            for name, body in self._table(entries, f"components.{kind}").items():
                where = f"components.{kind}.{name}"
                self._keys(self._table(body, where), _COMPONENT_KEYS, f"[{where}]", where)
                found[(kind, name)] = ComponentMeta(
                    description=body.get("description"),
                    defaults=self._table(body.get("defaults", {}), f"{where}.defaults"),
                    source=self._at(where),
                )
        return found

    def _recipe(self, name: str, body: Any) -> Recipe:
        where = f"recipes.{name}"
        body = self._table(body, where)
        self._keys(body, _RECIPE_KEYS, f"[{where}]", where)
        missing = [k for k in KINDS if not isinstance(body.get(k), str)]
        if missing:
            self._fail(f"recipe '{name}' needs {', '.join(missing)} (a name each)", where, body)
        params = self._table(body.get("params", {}), f"{where}.params")
        self._keys(params, set(KINDS), f"[{where}.params]", where)
        return Recipe(
            name=name,
            dataset=body["dataset"],
            backbone=body["backbone"],
            head=body["head"],
            description=body.get("description", ""),
            settings=self._settings(body, where, {*KINDS, "params", "description"}),
            params={k: self._table(v, f"{where}.params.{k}") for k, v in params.items()},
            source=self._at(where),
        )

    def _settings(self, table: Any, where: str, other_keys: set[str]) -> dict[str, Any]:
        """The run settings in ``table``, checked against their declarations."""
        self._keys(self._table(table, where), set(BY_NAME) | other_keys, f"[{where}]", where)
        settings = {}
        for key, value in table.items():
            if key in BY_NAME:
                try:
                    settings[key] = BY_NAME[key].coerce(value)
                except ValueError as exc:
                    self._fail(f"bad value for '{key}': {exc}", f"{where}.{key}", value)
        return settings

    def _table(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self._fail(f"'{where}' must be a table", where, value)
        return value

    def _keys(self, table: Mapping[str, Any], allowed: set[str], what: str, where: str) -> None:
        for key in table:
            if key not in allowed:
                hint = closest(key, allowed)
                self._fail(
                    f"unknown key '{key}' in {what}"
                    + (f" (did you mean '{hint[0]}'?)" if hint else ""),
                    key if not where else f"{where}.{key}",
                    key,
                    expected=f"one of {', '.join(sorted(allowed))}",
                )

    def _fail(self, what: str, where: str, got: Any, expected: str | None = None) -> NoReturn:
        raise ZooError(
            f"{self._at(where)}: {what}.",
            expected=expected or "a registry file shaped like zoo's own registry.toml",
            fix=f"edit {self.path.name} at that line",
            got=got,
        )

    def _at(self, dotted: str) -> str:
        """``path:line`` of the table or key ``dotted``, as well as we can find it."""
        parts = dotted.split(".")
        for size in range(len(parts), 0, -1):
            header = re.compile(r"^\s*\[\[?\s*" + r"\s*\.\s*".join(map(re.escape, parts[:size])))
            key = re.compile(r"^\s*" + re.escape(parts[size - 1]) + r"\s*=")
            for number, line in enumerate(self.lines, 1):
                if header.match(line) or (size == len(parts) and key.match(line)):
                    return f"{self.path}:{number}"
        return str(self.path)
