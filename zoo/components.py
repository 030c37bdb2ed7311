"""The component types plugins register, and what their builders return.

Everything here is cheap to import: TensorFlow and Keras appear only in type hints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from zoo.params import Param
from zoo.storage.declared import Download

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

#: The three kinds of component, in the order ``zoo run`` names them.
Kind = Literal["dataset", "backbone", "head"]
KINDS: tuple[Kind, ...] = ("dataset", "backbone", "head")
#: Every kind a plugin registers: the three a run is made of, and run observers.
ALL_KINDS: tuple[str, ...] = (*KINDS, "observer")

#: Preprocessing modes zoo knows by name (see ``zoo.model.layers.preprocessing_layer``).
PREPROCESSING_MODES = ("caffe", "tf", "torch", "unit", "none")
#: How a token sequence ``[batch, tokens, dim]`` becomes one vector: its first token
#: (the class token of ViT, DeiT, DINOv2, CLIP) or the mean over all tokens.
TOKEN_POOLING = ("class_token", "mean")


@dataclass(frozen=True)
class Splits:
    """What a dataset builder returns.

    Each split is a ``tf.data.Dataset`` of ``(image, label)`` pairs, unbatched:
    ``image`` a uint8 tensor ``[height, width, 3]`` of any size, ``label`` an integer
    in ``range(len(class_names))``. zoo resizes, shuffles, batches and prefetches.

    Args:
        train: The training split.
        validation: Evaluated after every epoch.
        test: Evaluated once, after training.
        class_names: One name per label, in label order.
        sizes: Examples per split (``{"train": 1600, ...}``), for progress and records.
        skipped: Files skipped as unreadable while building the splits (at least
            ``len(unreadable)``).
        version: The dataset's version, recorded in the run.
        fingerprint: Changes whenever the data changes (for example a digest of file
            names, sizes and modification times); part of the feature-cache key.
        unreadable: Optional: the skipped files, each with the reason
            (``{"PetImages/Cat/666.jpg": "the file is empty (0 bytes)"}``); zoo names
            them before training and records them all.
        class_counts: Optional: examples per class of each split, in label order
            (``{"train": [800, 800], ...}``); zoo shows them before training and warns
            when the classes are strongly imbalanced.
        files: Optional: where each example of a split comes from, in the order the
            split yields them (``{"test": ["PetImages/Cat/1.jpg", ...]}``), for splits in
            a fixed order (validation, test); zoo names the misclassified examples by
            it, else by their position in the split.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    class_names: Sequence[str]
    sizes: Mapping[str, int] = field(default_factory=dict)
    skipped: int = 0
    version: str | None = None
    fingerprint: str | None = None
    unreadable: Mapping[str, str] = field(default_factory=dict)
    class_counts: Mapping[str, Sequence[int]] = field(default_factory=dict)
    files: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class BuiltBackbone:
    """What a backbone builder returns.

    Args:
        model: Maps preprocessed images ``[batch, height, width, 3]`` to features: a
            feature map ``[batch, h, w, c]``, a token sequence ``[batch, tokens, c]``
            (vision transformers) or a vector ``[batch, c]``. Set ``model.trainable``
            as the component's parameters say; a frozen backbone lets zoo cache its
            features.
        preprocessing: Turns raw pixels (float32 in 0..255) into what ``model``
            expects: a Keras layer, or the name of a mode zoo knows (``"caffe"``,
            ``"tf"``, ``"torch"``, ``"unit"`` for 1/255, ``"none"``). It is part of the
            saved model, so training, evaluation and prediction apply it identically.
        weights_file: The weights file loaded, if any; its hash goes in the run record.
        token_pooling: For a token sequence, how a head should pool it by default
            (one of :data:`TOKEN_POOLING`): ``"class_token"`` when the first token is a
            class token trained to summarise the image, ``"mean"`` otherwise. A head
            whose ``token_pooling`` parameter is ``"auto"`` receives this value.
        pretrained: ``True`` when the builder loaded trained weights, ``False`` when
            the weights are a random initialisation, ``None`` when it does not say
            (then a ``weights_file`` counts as trained). A frozen backbone that is not
            pretrained cannot learn anything, and zoo warns.
    """

    model: keras.Model
    preprocessing: keras.layers.Layer | str = "none"
    weights_file: str | None = None
    token_pooling: str | None = None
    pretrained: bool | None = None


@dataclass(frozen=True)
class BuiltHead:
    """What a head builder returns.

    Args:
        outputs: The symbolic output tensor, computed from the ``features`` tensor the
            builder received. Keep the last layer float32 (``dtype="float32"``) so
            mixed precision cannot saturate it.
        loss: A Keras loss (name or object) that takes integer labels.
        metrics: Keras metrics (names or objects); ``"accuracy"`` is the usual one.
        pooled: Optional, for a head that begins with global pooling: the tensor its
            pooling gives, ``[batch, c]``. Everything from ``features`` to it must hold
            no weights and no randomness (dropout comes after), and ``outputs`` must
            depend on ``features`` only through it. zoo then caches this vector of a
            frozen backbone's features instead of the whole map (49x less for ResNet50
            at 224x224) and trains the rest of the head on it; the saved model is the
            whole head as built.
    """

    outputs: keras.KerasTensor
    loss: str | keras.losses.Loss
    metrics: Sequence[Any] = ("accuracy",)
    pooled: keras.KerasTensor | None = None


@dataclass(frozen=True)
class Component:
    """Shared fields of every component entry.

    Args:
        name: A Python identifier, unique within its kind (``zoo run`` uses it).
        description: One line for ``zoo list``.
        build: The builder; its signature depends on the kind.
        params: The parameters the builder accepts, with types and defaults.
        downloads: Keyword only: ``downloads(params) -> list[zoo.Download]``, the files
            the builder fetches from the network for these resolved parameters (none
            when the component is left without it). It runs without TensorFlow and
            without the network, for ``zoo list`` and ``zoo fetch``; when it cannot
            tell (a value it needs is missing), it raises ``zoo.ZooError``.
    """

    name: str
    description: str
    build: Callable[..., Any]
    params: Sequence[Param] = ()
    downloads: Callable[[Mapping[str, Any]], Sequence[Download]] | None = field(
        default=None, kw_only=True
    )

    kind = "component"

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass(frozen=True)
class Dataset(Component):
    """A dataset provider.

    The builder is ``build(params: dict) -> Splits``.

    Args:
        class_names: Optional ``class_names(params) -> list[str]`` that answers without
            loading data, so a head/dataset mismatch is caught before anything is
            downloaded or decoded.
    """

    class_names: Callable[[Mapping[str, Any]], Sequence[str]] | None = None

    kind = "dataset"


@dataclass(frozen=True)
class Backbone(Component):
    """A feature extractor, pretrained or not.

    The builder is ``build(image_shape: tuple[int, int, int], params: dict) ->
    BuiltBackbone``.

    Args:
        min_image_size: The smallest height and width it accepts; smaller is an error
            before anything is built.
        family: The network family (``"ResNet"``, ``"ViT"``), for tables.
        parameters: The parameters of the network it builds (without the classifier),
            when known without building it; ``zoo info`` and the README show it.
        native_image_size: The image side its weights were trained at, if any.
        source: Where the network and its weights come from, for tables
            (``"Keras Applications"``, ``"KerasHub preset resnet_50_imagenet"``).
        licence: The licence of its weights, when known.
    """

    min_image_size: int = 1
    family: str = ""
    parameters: int | None = None
    native_image_size: int | None = None
    source: str = ""
    licence: str = ""

    def card(self) -> dict[str, Any]:
        """The card's fields by name (unset ones too), for ``zoo info`` and tables."""
        return {
            "family": self.family,
            "parameters": self.parameters,
            "native_image_size": self.native_image_size,
            "source": self.source,
            "licence": self.licence,
        }

    kind = "backbone"


@dataclass(frozen=True)
class Head(Component):
    """The layers on top of the backbone, with their loss and metrics.

    The builder is ``build(features: keras.KerasTensor, num_classes: int, params: dict)
    -> BuiltHead``, where ``features`` has the backbone's output shape: a feature map
    ``[batch, h, w, c]``, a token sequence ``[batch, tokens, c]`` or a vector
    ``[batch, c]``. A head that pools token sequences declares a ``str`` parameter
    ``token_pooling`` with the choices ``"auto"``, ``"class_token"`` and ``"mean"``;
    zoo replaces ``"auto"`` with the backbone's ``BuiltBackbone.token_pooling`` when it
    declares one (the head pools by the mean otherwise).

    Args:
        min_classes: The fewest classes it supports.
        max_classes: The most classes it supports (``None``: no limit).
    """

    min_classes: int = 2
    max_classes: int | None = None

    kind = "head"

    def supports(self, num_classes: int) -> bool:
        upper = self.max_classes if self.max_classes is not None else num_classes
        return self.min_classes <= num_classes <= upper

    @property
    def class_range(self) -> str:
        if self.max_classes == self.min_classes:
            return f"exactly {self.min_classes}"
        if self.max_classes is None:
            return f"{self.min_classes} or more"
        return f"{self.min_classes} to {self.max_classes}"


@dataclass(frozen=True)
class Observer(Component):
    """A run observer: a tracker (MLflow, Weights & Biases), a notifier, a logger.

    The builder is ``build(params: dict, run: zoo.ObservedRun) -> zoo.Callback``. It runs
    once per run that names the observer in ``--track`` (or ``[run] track``), on the chief
    worker, before the run starts; the object it returns is told what happens during the
    run (:class:`zoo.Callback`'s methods) after zoo's own callbacks and before the console.
    A builder raises ``zoo.ZooError`` for a user error (a missing package, a bad
    parameter): the run does not start. An observer that raises while the run goes on
    is reported once and the run continues without it.
    """

    kind = "observer"


COMPONENT_TYPES: Mapping[str, type[Component]] = {
    "dataset": Dataset,
    "backbone": Backbone,
    "head": Head,
    "observer": Observer,
}


def validate(component: Component) -> None:
    """Raise ValueError, saying what is wrong, if ``component`` breaks its contract."""
    expected = COMPONENT_TYPES.get(getattr(component, "kind", ""))
    if expected is None or not isinstance(component, expected):
        raise ValueError(
            f"registered {component!r}, which is not a zoo.Dataset/Backbone/Head/Observer"
        )
    if not isinstance(component.name, str) or not component.name.isidentifier():
        raise ValueError(
            f"registered a {component.kind} named {component.name!r}; "
            "names must be valid Python identifiers"
        )
    label = f"{component.kind} '{component.name}'"
    for broken, problem in _problems(component):
        if broken:
            raise ValueError(f"{label} {problem}")


def _problems(component: Any) -> Iterator[tuple[bool, str]]:
    """``(is_broken, what is wrong)`` for each rule a component entry must follow.

    Lazily: the caller stops at the first broken rule, so later rules may rely on
    earlier ones (``max_classes`` is compared with a valid ``min_classes``).
    """
    params = component.params
    yield not isinstance(component.description, str), "has a description that is not a string"
    yield not callable(component.build), "has no callable builder"
    yield (
        component.downloads is not None and not callable(component.downloads),
        "has a downloads that is neither None nor callable",
    )
    names = [getattr(p, "name", None) for p in params] if isinstance(params, list | tuple) else []
    yield (
        not isinstance(params, list | tuple)
        or not all(isinstance(p, Param) for p in params)
        or len(set(names)) != len(names),
        "declares its parameters badly: they must be a list of zoo.Param with distinct names",
    )
    if component.kind == "dataset":
        yield (
            component.class_names is not None and not callable(component.class_names),
            "has a class_names that is neither None nor callable",
        )
    if component.kind == "backbone":
        yield not _count(component.min_image_size, 1), "needs min_image_size, an integer >= 1"
    if component.kind == "head":
        yield not _count(component.min_classes, 1), "needs min_classes, an integer >= 1"
        yield (
            component.max_classes is not None
            and not _count(component.max_classes, component.min_classes),
            "needs max_classes to be None or an integer >= min_classes",
        )


def _count(value: Any, least: Any) -> bool:
    """``value`` is an integer (not a bool) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least
