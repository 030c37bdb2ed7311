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

A model file is data someone else may have written: ``zoo.json`` is bounded in size and
checked field by field before use (:meth:`Manifest.from_json`); a recorded module is
imported only from the package of the plugin that built the component
(:mod:`zoo.results.keras_classes`); and Keras loads in ``safe_mode``, which refuses lambdas.

Models saved before the manifest have no ``zoo.json``; their run directory's records give the same
facts (:func:`manifest_from_run`).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.components import KINDS
from zoo.errors import ZooError
from zoo.results.keras_classes import ClassFinder
from zoo.results.manifest import (
    HEAD_LAYER,
    MANIFEST,
    MANIFEST_FIX,
    MAX_MANIFEST_BYTES,
    Component,
    Manifest,
    find_keras_objects,
    required_packages,
)
from zoo.storage import atomic

if TYPE_CHECKING:
    import keras

    from zoo.model.assemble import Assembled
    from zoo.registry import Registry
    from zoo.runconfig import Resolved

#: The members every ``.keras`` archive has (``keras/src/saving/saving_lib.py``).
_KERAS_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")
#: A model's configuration is kilobytes to a few megabytes (a KerasHub model's); Keras
#: reads it whole, so zoo refuses one past this before either reads it.
_MAX_CONFIG = 64 * 1024**2


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
    objects = find_keras_objects(serialized, head_layer)
    manifest = replace(manifest, keras_objects=objects, requires=required_packages(serialized))
    with atomic.staged(path, suffix=".keras") as staging:  # Keras saves no other name
        model.save(staging)
        with zipfile.ZipFile(staging, "a") as archive:
            archive.writestr(MANIFEST, manifest.to_json())


def _output(model: keras.Model) -> str:
    return "sigmoid" if int(model.outputs[0].shape[-1]) == 1 else "softmax"


def _zoo_version() -> str:
    from zoo._version import __version__

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
            # Sizes are checked before testzip decompresses every member through.
            config = json.loads(_read_member(archive, "config.json", _MAX_CONFIG))
            manifest = _read_manifest(archive, path) if MANIFEST in archive.namelist() else None
            broken = archive.testzip()
            if broken is not None:
                raise _Damaged(f"its member {broken} fails its checksum")
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


def _read_member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """``name``'s bytes, refused past ``limit`` before they are read (a zip bomb is small)."""
    size = archive.getinfo(name).file_size
    if size > limit:
        raise _Damaged(f"its {name} is {size:,} bytes, more than zoo reads ({limit:,})")
    return archive.read(name)  # zipfile stops at the size checked, whatever follows


def _read_manifest(archive: zipfile.ZipFile, path: Path) -> Manifest:
    source = f"{MANIFEST} in {path}"
    size = archive.getinfo(MANIFEST).file_size
    if size > MAX_MANIFEST_BYTES:
        raise ZooError(
            f"{source} is {size:,} bytes: zoo writes a few kilobytes, and reads no more "
            f"than {MAX_MANIFEST_BYTES:,}.",
            expected="the manifest zoo wrote when it saved the model",
            fix=MANIFEST_FIX,
            got=size,
        )
    return Manifest.from_json(_read_member(archive, MANIFEST, MAX_MANIFEST_BYTES), source)


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
        ZooError: metrics.json does not record the class names, or the records are not
            as zoo wrote them (each field is checked as a manifest's is).
    """
    source = f"the records of {archive.path.parent} (config.json, metrics.json, model.keras)"
    try:
        data = _recorded(config, metrics, archive)
    except (AttributeError, KeyError, TypeError, IndexError) as exc:
        raise ZooError(
            f"{source} do not describe the model ({_reason(exc)}).",
            expected="the records of a run as zoo wrote them",
            fix=MANIFEST_FIX,
            got=str(archive.path.parent),
        ) from None
    return Manifest.from_dict(data, source)


def _recorded(
    config: Mapping[str, Any], metrics: Mapping[str, Any], archive: Archive
) -> dict[str, Any]:
    """The fields of a manifest, as an older run's records give them."""
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
        components[kind] = {
            "name": choice.get("name", "?"),
            "plugin": choice.get("plugin", plugin.get("plugin", "?")),
            "package": plugin.get("package", "?"),
            "version": plugin.get("version", "?"),
            "params": choice.get("params") or {},
        }
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
    return {
        "class_names": class_names,
        "image_size": config.get("image_size"),
        "feature_shape": head["config"]["layers"][0]["config"]["batch_shape"],
        "output": "sigmoid" if len(class_names) == 2 and _units(head) == 1 else "softmax",
        "components": components,
        "keras_objects": [asdict(o) for o in find_keras_objects(archive.config)],
        "written_by": {"zoo": (metrics.get("versions") or {}).get("zoo", "?")},
    }


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
    from zoo.runtime import loader

    loader.load()
    import keras

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
    objects = ClassFinder(manifest, registry, path)
    custom = objects.custom_objects()
    try:
        # safe_mode: a lambda in the file is refused, not run (Keras's default, kept).
        model = keras.saving.load_model(path, custom_objects=custom, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for one reason: it cannot load it
        raise objects.cannot_load(path, exc) from None
    _check_outputs(model, manifest, path)
    return Loaded(model, manifest, objects.warnings)


def _check_outputs(model: keras.Model, manifest: Manifest, path: Path) -> None:
    """The manifest's classes must be the model's: a sigmoid gives two, a softmax each."""
    width = int(model.outputs[0].shape[-1])
    count = len(manifest.class_names)
    if (width, count) == ((1, 2) if manifest.output == "sigmoid" else (count, count)):
        return
    raise ZooError(
        f"{MANIFEST} in {path}: field class_names is a list of {count}, but the model's "
        f"{manifest.output} output gives {width} number(s).",
        expected="two class names for a sigmoid output of one number, else one per output",
        fix=MANIFEST_FIX,
    )
