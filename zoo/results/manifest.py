"""The manifest zoo writes into every ``.keras`` file it saves: ``zoo.json``.

It records the class names, the image size, the components that built the model
(plugin, package, version, parameters), and the Keras objects in the model that Keras
cannot find by itself, with the module and component each comes from
(:func:`find_keras_objects`). :mod:`zoo.results.saving` writes and reads it;
:mod:`zoo.results.keras_classes` uses it to find a plugin's classes before loading.

A manifest read back may come from anyone: :meth:`Manifest.from_json` checks every field
it uses, and an error names the field (``zoo.json in PATH: field image_size is 0``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from zoo.components import KINDS
from zoo.errors import ZooError
from zoo.registry import origin

#: zoo's member of a ``.keras`` archive.
MANIFEST = "zoo.json"
FORMAT = 1
#: zoo writes a few kilobytes; it reads no more of a manifest than this.
MAX_MANIFEST_BYTES = 4 * 1024**2
#: How to mend a manifest zoo did not write.
MANIFEST_FIX = "train the run again, or get the original file"
_OUTPUTS = ("sigmoid", "softmax")
#: A dotted Python module name, all a recorded module may be.
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", re.ASCII)
#: Packages whose classes Keras imports by itself when it loads a model.
_KERAS_PACKAGES = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp"})
#: Modules and packages that held Keras classes and have moved since, as an older
#: manifest names them: it is read as naming where they are now. zoo's built-in plugins
#: were imported by path as ``zoo_plugins.<name>``; they are ``zoo.builtins.<name>`` now.
MOVED = {"zoo.layers": "zoo.model.layers", "zoo_plugins": "zoo.builtins"}
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
        return f"plugin '{self.plugin}' ({origin(self.package, self.version)})"


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
    #: The packages (pip names) ``keras.saving.load_model`` needs besides Keras and its
    #: backend, such as ``keras-hub`` for a KerasHub backbone (:func:`required_packages`).
    requires: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, source: str = MANIFEST) -> Manifest:
        """Read ``zoo.json``; fields a later zoo adds are ignored.

        Args:
            source: Where the text comes from, for messages: ``zoo.json in PATH``.

        Raises:
            ZooError: it is not JSON, or a field is missing or not as zoo writes it.
        """
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise ZooError(
                f"{source} is not JSON: {exc}.",
                expected="the JSON object zoo writes",
                fix=MANIFEST_FIX,
            ) from None
        return cls.from_dict(data, source)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> Manifest:
        """Check every field of parsed manifest ``data`` (from ``source``) and build it.

        Raises:
            ZooError: a field is missing or not as zoo writes it; the message names it.
        """
        return _Reader(source).manifest(data)


_MISSING = object()


def _text(value: Any) -> bool:
    return isinstance(value, str) and value.isprintable()


def _str(value: Any) -> bool:
    return isinstance(value, str)


def _name(value: Any) -> bool:
    return _text(value) and value != ""


def _count(value: Any, least: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _size(value: Any) -> bool:
    return value is None or _count(value, least=0)


def _optional_text(value: Any) -> bool:
    return value is None or _text(value)


def moved(module: str | None) -> str | None:
    """Where ``module``, recorded by an older zoo, is today (itself if it did not move).

    The longest moved module or package ``module`` starts with decides:
    ``zoo_plugins.small_cnn`` is ``zoo.builtins.small_cnn``.
    """
    if not module:
        return module
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        old = ".".join(parts[:depth])
        if old in MOVED:
            return ".".join([MOVED[old], *parts[depth:]])
    return module


def _module(value: Any) -> bool:
    return value is None or (isinstance(value, str) and _MODULE.fullmatch(value) is not None)


class _Reader:
    """Reads a manifest zoo did not write in this process, checking each field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, name: str, problem: str, expected: str) -> ZooError:
        return ZooError(
            f"{self.source}: field {name} is {problem}.", expected=expected, fix=MANIFEST_FIX
        )

    def check(self, name: str, value: Any, ok: Callable[[Any], bool], expected: str) -> Any:
        if value is _MISSING or not ok(value):
            raise self.fail(name, _described(value), expected)
        return value

    def get(
        self,
        data: Mapping[str, Any],
        name: str,
        ok: Callable[[Any], bool],
        expected: str,
        default: Any = _MISSING,
    ) -> Any:
        """``data[name]`` (``name`` the field's full name: ``a.b`` is ``b`` of ``a``)."""
        return self.check(name, data.get(name.rpartition(".")[2], default), ok, expected)

    def manifest(self, data: Any) -> Manifest:
        data = self.check("(the whole file)", data, _is_object, "a JSON object")
        names = self.get(data, "class_names", _list, "a list of the model's classes")
        for i, name in enumerate(names):
            # Any text: a class is named for its folder, whatever characters that holds;
            # the console shows control characters visibly.
            self.check(f"class_names[{i}]", name, _str, "a class name: text")
        if not names:
            raise self.fail("class_names", "empty", "a list of the model's classes")
        components = self.components(data.get("components", _MISSING))
        objects = self.get(data, "keras_objects", _list, "a list", default=[])
        return Manifest(
            class_names=list(names),
            image_size=self.get(data, "image_size", _count, "a whole number, 1 or more"),
            feature_shape=self.feature_shape(data.get("feature_shape", _MISSING)),
            output=self.get(data, "output", _OUTPUTS.__contains__, "'sigmoid' or 'softmax'"),
            components=components,
            keras_objects=[self.keras_object(i, o, components) for i, o in enumerate(objects)],
            written_by=self.texts("written_by", data.get("written_by", {})),
            requires=self.names("requires", data.get("requires", [])),
        )

    def names(self, name: str, value: Any) -> list[str]:
        for i, text in enumerate(self.check(name, value, _list, "a list of package names")):
            self.check(f"{name}[{i}]", text, _name, "a package name: printable text")
        return list(value)

    def feature_shape(self, value: Any) -> list[int | None]:
        shape = self.check("feature_shape", value, _list, "a list: the head's input shape")
        for i, size in enumerate(shape):
            self.check(f"feature_shape[{i}]", size, _size, "null or a whole number, 0 or more")
        return list(shape)

    def components(self, value: Any) -> dict[str, Component]:
        value = self.check("components", value, _is_object, "an object: {dataset, backbone, head}")
        for kind in value:
            if kind not in KINDS:
                raise self.fail(f"components.{kind}", "an unknown kind", f"only {KINDS}")
        return {kind: self.component(kind, value.get(kind, _MISSING)) for kind in KINDS}

    def component(self, kind: str, value: Any) -> Component:
        at = f"components.{kind}"
        data = self.check(at, value, _is_object, "an object: name, plugin, package, version")
        return Component(
            name=self.get(data, f"{at}.name", _name, "the component's name: printable text"),
            plugin=self.get(data, f"{at}.plugin", _name, "its plugin's name: printable text"),
            package=self.get(data, f"{at}.package", _text, "its plugin's package: printable text"),
            version=self.get(data, f"{at}.version", _text, "its plugin's version: printable text"),
            params=dict(self.get(data, f"{at}.params", _is_object, "an object", default={})),
        )

    def keras_object(self, i: int, value: Any, components: Mapping[str, Any]) -> KerasObject:
        at = f"keras_objects[{i}]"
        data = self.check(at, value, _is_object, "an object: name, module, qualname, component")
        # find_keras_objects gives each object to the backbone or the head.
        ours = lambda v: v in ("backbone", "head") and v in components  # noqa: E731
        return KerasObject(
            name=self.get(data, f"{at}.name", _name, "the name Keras looks it up by"),
            module=moved(self.get(data, f"{at}.module", _module, "null or a module name", None)),
            qualname=self.get(data, f"{at}.qualname", _optional_text, "null or text", None),
            component=self.get(data, f"{at}.component", ours, "'backbone' or 'head'"),
        )

    def texts(self, name: str, value: Any) -> dict[str, str]:
        data = self.check(name, value, _is_object, "an object")
        for key, text in data.items():
            self.check(f"{name}.{key}", text, _text, "printable text")
        return dict(data)


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _list(value: Any) -> bool:
    return isinstance(value, list)


def _described(value: Any) -> str:
    """How a message shows a value read from a file: short, one line, no control codes."""
    if value is _MISSING:
        return "missing"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    shown = json.dumps(value)  # escapes control characters; strings quoted
    return shown if len(shown) <= 60 else shown[:57] + "..."


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


def required_packages(serialized: Any) -> list[str]:
    """The installed distributions (pip names) whose classes a serialized model holds.

    ``keras.saving.load_model`` imports each class's module, so the file loads only where
    its package is installed: ``keras-hub`` for a KerasHub backbone, ``zoo`` for a zoo
    layer. Keras itself is left out, and so are classes of a script (``__main__``),
    which no package brings: the manifest's ``keras_objects`` name them.
    """
    import importlib.metadata

    installed = importlib.metadata.packages_distributions()
    modules = {obj["module"] for obj, _ in _serialized(serialized, HEAD_LAYER, "backbone")}
    tops = {module.split(".")[0] for module in modules if isinstance(module, str)}
    return sorted(
        {installed.get(top, [top])[0] for top in tops - {"keras", "builtins", "__main__"}}
    )


def _custom_objects(
    config: Any, head_layer: str, component: str
) -> Iterator[tuple[str, str | None, str]]:
    """``(name Keras looks up, module, component)`` of each object Keras cannot import."""
    for obj, owner in _serialized(config, head_layer, component):
        module = obj["module"]
        if module == "builtins" and obj["class_name"] == "function":
            # A registered function: its registered name is the config itself.
            if isinstance(obj.get("config"), str) and ">" in obj["config"]:
                yield obj["config"], None, owner
        elif module is None or str(module).split(".")[0] not in _KERAS_PACKAGES | {"builtins"}:
            yield obj.get("registered_name") or obj["class_name"], module, owner


def _serialized(
    config: Any, head_layer: str, component: str
) -> Iterator[tuple[dict[str, Any], str]]:
    """Each serialized Keras object in ``config`` (a dict with ``class_name`` and
    ``module``), at any depth, with its component: inside the layer named ``head_layer``,
    ``"head"``; elsewhere ``component``."""
    if isinstance(config, list):
        for item in config:
            yield from _serialized(item, head_layer, component)
        return
    if not isinstance(config, dict):
        return
    if "class_name" in config and "module" in config:
        if config.get("name") == head_layer:
            component = "head"
        yield config, component
    for value in config.values():
        yield from _serialized(value, head_layer, component)
