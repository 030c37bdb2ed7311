"""Saving a trained model with what reloading it needs; loading it in any new process.

``model.keras`` is Keras's archive (``config.json``, ``metadata.json``,
``model.weights.h5``) with one member of zoo's own, ``zoo.json``, the manifest
(:class:`Manifest`): the class names, the image size, the components that built the
model (plugin, package, version, parameters), and the Keras objects in it that Keras
cannot find by itself, with the module and component each comes from.

Keras finds a class when it loads a model only if the class is registered in this
process, or lives in ``keras`` or ``keras_hub`` (``_retrieve_class_or_fn`` in
``keras/src/saving/serialization_lib.py`` imports no other module). A plugin's layer is
registered when its module is imported, and the plugin may import that module only in
its builder, or define the class inside the builder. So before loading, for each
object not registered yet, zoo in turn: imports the recorded module (plugins loaded
first, so a local plugin's package exists); asks the component's plugin through the
optional ``register_keras_objects`` hook; builds the component again, cheaply (a head
on a ``keras.Input`` of the recorded feature shape, a backbone at the recorded image
size and parameters), which runs its registrations. What is still missing is an error
naming the plugin, package and version that trained the model.

Models saved before the manifest have no ``zoo.json``; their run directory's records give the same
facts (:func:`manifest_from_run`).
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.components import KINDS
from zoo.errors import ZooError

if TYPE_CHECKING:
    import keras

    from zoo.model import Assembled
    from zoo.registry import PluginInfo, Registry
    from zoo.runconfig import Resolved

#: zoo's member of a ``.keras`` archive.
MANIFEST = "zoo.json"
FORMAT = 1
#: The members every ``.keras`` archive has (``keras/src/saving/saving_lib.py``).
_KERAS_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")
#: Packages whose classes Keras imports by itself when it loads a model.
_KERAS_PACKAGES = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp"})
#: ``build_model`` names the head model so (older zoo did too); the rest is the backbone's.
HEAD_LAYER = "head"


@dataclass(frozen=True)
class Component:
    """One component that built the model, and the plugin that gave it."""

    name: str
    plugin: str
    package: str
    version: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def provider(self) -> str:
        """``plugin 'example' (zoo-plugin-example 0.1.0)``."""
        origin = self.package if self.version in ("-", "") else f"{self.package} {self.version}"
        return f"plugin '{self.plugin}' ({origin})"


@dataclass(frozen=True)
class KerasObject:
    """A class or function in the model that Keras cannot import by itself.

    Args:
        name: The name Keras looks it up by (``package>Name`` when registered).
        module: Where it is defined (``None``: unknown, or a script's ``__main__``).
        qualname: Its qualified name (``build.<locals>.Scale`` inside a builder).
        component: ``"backbone"`` or ``"head"``, whichever put it in the model.
    """

    name: str
    module: str | None
    qualname: str | None
    component: str


@dataclass(frozen=True)
class Manifest:
    """What zoo records next to the model: ``zoo.json`` in the archive.

    ``output`` is ``"sigmoid"`` (one output: the probability of the second class) or
    ``"softmax"`` (one probability per class).
    """

    class_names: list[str]
    image_size: int
    feature_shape: list[int | None]
    output: str
    components: dict[str, Component]
    keras_objects: list[KerasObject] = field(default_factory=list)
    written_by: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Read ``zoo.json``; fields a later zoo adds are ignored."""
        data = _known(cls, json.loads(text))
        data["components"] = {
            k: Component(**_known(Component, v)) for k, v in data["components"].items()
        }
        data["keras_objects"] = [
            KerasObject(**_known(KerasObject, o)) for o in data.get("keras_objects", [])
        ]
        return cls(**data)


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class Loaded:
    """A loaded model, its manifest, and warnings worth showing (other plugin versions)."""

    model: keras.Model
    manifest: Manifest
    warnings: list[str] = field(default_factory=list)


# --- Saving -------------------------------------------------------------------------


def save_trained(
    path: Path, assembled: Assembled, resolved: Resolved, class_names: Sequence[str]
) -> None:
    """Save a run's trained model to ``path`` (``model.keras``) with its manifest."""
    import keras

    entries = {"dataset": resolved.dataset, "backbone": resolved.backbone, "head": resolved.head}
    components = {
        kind: Component(
            name=entry.name,
            plugin=entry.plugin.name,
            package=entry.plugin.package,
            version=entry.plugin.version,
            params=dict(choice.params),
        )
        for (kind, entry), choice in zip(entries.items(), resolved.config.choices, strict=True)
    }
    manifest = Manifest(
        class_names=list(class_names),
        image_size=resolved.config.image_size,
        feature_shape=list(assembled.head.inputs[0].shape),
        output=_output(assembled.model),
        components=components,
        written_by={"zoo": _zoo_version(), "keras": keras.__version__},
    )
    save_model(assembled.model, path, manifest, head_layer=assembled.head.name)


def save_model(
    model: keras.Model, path: Path, manifest: Manifest, head_layer: str = HEAD_LAYER
) -> None:
    """Write ``model`` and ``manifest`` to the ``.keras`` file ``path``, whole or not at all.

    The manifest's ``keras_objects`` are found in the model's own configuration;
    objects in the top-level layer ``head_layer`` are the head's, the rest the
    backbone's (its preprocessing included).
    """
    import keras

    serialized = keras.saving.serialize_keras_object(model)
    manifest = replace(manifest, keras_objects=find_keras_objects(serialized, head_layer))
    fd, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".keras")
    os.close(fd)
    try:
        model.save(staging)
        with zipfile.ZipFile(staging, "a") as archive:
            archive.writestr(MANIFEST, manifest.to_json())
        with open(staging, "rb") as f:
            os.fsync(f.fileno())
        os.replace(staging, path)
    finally:
        Path(staging).unlink(missing_ok=True)


def find_keras_objects(serialized: Any, head_layer: str = HEAD_LAYER) -> list[KerasObject]:
    """The objects in a serialized model that Keras will not find by itself, in order.

    Objects inside the layer named ``head_layer`` (at any depth: an export wraps the
    model) are the head's; the others, preprocessing included, the backbone's.
    """
    import keras

    found: dict[str, KerasObject] = {}
    for name, module, component in _custom_objects(serialized, head_layer, "backbone"):
        defined = keras.saving.get_registered_object(name)
        found.setdefault(
            name,
            KerasObject(
                name=name,
                module=getattr(defined, "__module__", module),
                qualname=getattr(defined, "__qualname__", None),
                component=component,
            ),
        )
    return list(found.values())


def _custom_objects(
    config: Any, head_layer: str, component: str
) -> Iterator[tuple[str, str | None, str]]:
    """``(name Keras looks up, module, component)`` of each object Keras cannot import."""
    if isinstance(config, list):
        for item in config:
            yield from _custom_objects(item, head_layer, component)
        return
    if not isinstance(config, dict):
        return
    if "class_name" in config and "module" in config:
        if config.get("name") == head_layer:
            component = "head"
        module = config["module"]
        if module == "builtins" and config["class_name"] == "function":
            # A registered function: its registered name is the config itself.
            if isinstance(config.get("config"), str) and ">" in config["config"]:
                yield config["config"], None, component
        elif module is None or str(module).split(".")[0] not in _KERAS_PACKAGES | {"builtins"}:
            yield config.get("registered_name") or config["class_name"], module, component
    for value in config.values():
        yield from _custom_objects(value, head_layer, component)


def _output(model: keras.Model) -> str:
    return "sigmoid" if int(model.outputs[0].shape[-1]) == 1 else "softmax"


def _zoo_version() -> str:
    from zoo import __version__

    return __version__


# --- Reading ------------------------------------------------------------------------


@dataclass(frozen=True)
class Archive:
    """A ``.keras`` file as read without Keras: its configuration and zoo's manifest."""

    path: Path
    config: dict[str, Any]
    manifest: Manifest | None


def read_archive(path: Path) -> Archive:
    """Read and check ``path``: a complete ``.keras`` archive, every member intact.

    Raises:
        ZooError: the file is missing, truncated or damaged (exit 2; nothing to do
            with plugins).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            missing = [m for m in _KERAS_MEMBERS if m not in archive.namelist()]
            if missing:
                raise _Damaged(f"it has no {', '.join(missing)}")
            broken = archive.testzip()
            if broken is not None:
                raise _Damaged(f"its member {broken} fails its checksum")
            config = json.loads(archive.read("config.json"))
            manifest = (
                Manifest.from_json(archive.read(MANIFEST))
                if MANIFEST in archive.namelist()
                else None
            )
    except (_Damaged, OSError, zipfile.BadZipFile, ValueError, KeyError, TypeError) as exc:
        raise ZooError(
            f"{path} is damaged: it is not a complete Keras model file ({_reason(exc)}).",
            expected="a .keras file as zoo saved it (a zip archive with config.json, "
            "metadata.json, model.weights.h5 and zoo.json)",
            fix="restore the file from a copy, or train the run again (its config.json "
            "holds the command)",
            got=str(path),
        ) from None
    return Archive(path, config, manifest)


class _Damaged(Exception):
    pass


def _reason(exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return "the file does not exist"
    if isinstance(exc, zipfile.BadZipFile):
        return f"not a readable zip archive: {exc}; it may be truncated"
    return str(exc) or type(exc).__name__


def manifest_from_run(
    config: Mapping[str, Any], metrics: Mapping[str, Any], archive: Archive
) -> Manifest:
    """The manifest of a model saved before manifests, from its run's records.

    Raises:
        ZooError: metrics.json does not record the class names.
    """
    class_names = (metrics.get("dataset") or {}).get("class_names")
    if not class_names:
        raise ZooError(
            f"{archive.path.parent / 'metrics.json'} does not record the class names.",
            expected="metrics.json with dataset.class_names, as `zoo run` writes it",
            fix="train the run again with this version of zoo",
            got=str(archive.path.parent),
        )
    plugins = metrics.get("plugins") or {}
    components = {}
    for kind in KINDS:
        choice, plugin = config.get(kind) or {}, plugins.get(kind) or {}
        components[kind] = Component(
            name=choice.get("name", "?"),
            plugin=choice.get("plugin", plugin.get("plugin", "?")),
            package=plugin.get("package", "?"),
            version=plugin.get("version", "?"),
            params=dict(choice.get("params") or {}),
        )
    layers = archive.config.get("config", {}).get("layers", [])
    head = next((x for x in layers if x.get("name") == HEAD_LAYER), None)
    if head is None:
        raise ZooError(
            f"{archive.path} has no {MANIFEST} and no layer named '{HEAD_LAYER}': zoo did "
            "not save it.",
            expected="the model.keras of a zoo run",
            fix="load it with keras.models.load_model",
            got=str(archive.path),
        )
    return Manifest(
        class_names=list(class_names),
        image_size=int(config["image_size"]),
        feature_shape=list(head["config"]["layers"][0]["config"]["batch_shape"]),
        output="sigmoid" if len(class_names) == 2 and _units(head) == 1 else "softmax",
        components=components,
        keras_objects=find_keras_objects(archive.config),
        written_by={"zoo": (metrics.get("versions") or {}).get("zoo", "?")},
    )


def _units(head: Mapping[str, Any]) -> int | None:
    """The width of the head's last layer with ``units``, as saved."""
    units = [x["config"].get("units") for x in head["config"]["layers"] if "units" in x["config"]]
    return units[-1] if units else None


# --- Loading ------------------------------------------------------------------------


def load_saved(
    path: Path,
    registry: Registry | None = None,
    *,
    fallback: Callable[[Archive], Manifest] | None = None,
) -> Loaded:
    """Load a ``.keras`` file zoo saved, in any process, whichever plugin built it.

    Args:
        registry: The loaded plugins; loaded as zoo's commands load them when needed.
        fallback: The manifest of a file without one (older runs' models).

    Raises:
        ZooError: the file is damaged; a class in it is provided by no loaded plugin;
            or Keras cannot load it. Each names the plugin, package and version that
            built the model, where a plugin's object is involved.
    """
    archive = read_archive(path)
    from zoo import _tf

    _tf.load()
    import keras

    from zoo import layers  # noqa: F401  (reads older models' Preprocess layer)

    manifest = archive.manifest
    if manifest is None:
        if fallback is None:
            raise ZooError(
                f"{path} has no {MANIFEST}: it was not saved by zoo.",
                expected="a model.keras of a zoo run, or a file `zoo export` wrote",
                fix="load it with keras.models.load_model",
                got=str(path),
            )
        manifest = fallback(archive)
    objects = _Objects(manifest, registry)
    custom = objects.custom_objects()
    try:
        model = keras.saving.load_model(path, custom_objects=custom, compile=False)
    except Exception as exc:  # Keras raises many types for one reason: it cannot load it
        raise objects.cannot_load(path, exc) from None
    return Loaded(model, manifest, objects.warnings)


class _Objects:
    """Makes the manifest's Keras objects findable by Keras, plugin by plugin."""

    def __init__(self, manifest: Manifest, registry: Registry | None) -> None:
        self.manifest = manifest
        self._registry = registry
        self.custom: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.failures: dict[str, str] = {}  # by component: why its classes stay missing

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from zoo.plugins import load_registry

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
        from zoo.plugins import PLUGIN_ERRORS, describe_error

        # Once plugins are loaded, a local plugin's package (zoo_local_plugins) exists.
        if not obj.module or obj.module == "__main__" or not self._loaded(obj.component):
            return
        try:
            importlib.import_module(obj.module)
        except PLUGIN_ERRORS as exc:
            self.failures[obj.component] = f"failed to import {obj.module}: {describe_error(exc)}"

    def _declared(self, kind: str) -> None:
        import keras

        from zoo.model import ComponentError
        from zoo.plugins import PLUGIN_ERRORS, describe_error, keras_objects

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

        from zoo.model import call_builder

        component = self.manifest.components[kind]
        try:
            entry = self.registry.get(kind, f"{component.plugin}:{component.name}")
        except ZooError:
            return  # the plugin is missing or failed: _difference says so
        params = dict(component.params)
        try:
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
