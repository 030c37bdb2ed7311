"""The manifest zoo writes into every ``.keras`` file it saves: ``zoo.json``.

It records the class names, the image size, the components that built the model
(plugin, package, version, parameters), and the Keras objects in the model that Keras
cannot find by itself, with the module and component each comes from
(:func:`find_keras_objects`). :mod:`zoo.saving` writes and reads it;
:mod:`zoo.keras_classes` uses it to find a plugin's classes before loading.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: zoo's member of a ``.keras`` archive.
MANIFEST = "zoo.json"
FORMAT = 1
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
