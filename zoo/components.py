"""The component types plugins register, and what their builders return.

Everything here is cheap to import: TensorFlow and Keras appear only in type hints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.params import Param

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

KINDS = ("dataset", "backbone", "head")

#: Preprocessing modes zoo knows by name (see ``zoo.layers.preprocessing_layer``).
PREPROCESSING_MODES = ("caffe", "tf", "torch", "unit", "none")


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
        skipped: Files skipped as unreadable while building the splits.
        version: The dataset's version, recorded in the run.
        fingerprint: Changes whenever the data changes (for example a digest of file
            names, sizes and modification times); part of the feature-cache key.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    class_names: Sequence[str]
    sizes: Mapping[str, int] = field(default_factory=dict)
    skipped: int = 0
    version: str | None = None
    fingerprint: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class BuiltBackbone:
    """What a backbone builder returns.

    Args:
        model: Maps preprocessed images ``[batch, height, width, 3]`` to features
            (a feature map or a vector). Set ``model.trainable`` as the component's
            parameters say; a frozen backbone lets zoo cache its features.
        preprocessing: Turns raw pixels (float32 in 0..255) into what ``model``
            expects: a Keras layer, or the name of a mode zoo knows (``"caffe"``,
            ``"tf"``, ``"torch"``, ``"unit"`` for 1/255, ``"none"``). It is part of the
            saved model, so training, evaluation and prediction apply it identically.
        weights_file: The weights file loaded, if any; its hash goes in the run record.
    """

    model: keras.Model
    preprocessing: keras.layers.Layer | str = "none"
    weights_file: str | None = None


@dataclass(frozen=True)
class BuiltHead:
    """What a head builder returns.

    Args:
        outputs: The symbolic output tensor, computed from the ``features`` tensor the
            builder received. Keep the last layer float32 (``dtype="float32"``) so
            mixed precision cannot saturate it.
        loss: A Keras loss (name or object) that takes integer labels.
        metrics: Keras metrics (names or objects); ``"accuracy"`` is the usual one.
    """

    outputs: keras.KerasTensor
    loss: str | keras.losses.Loss
    metrics: Sequence[Any] = ("accuracy",)


@dataclass(frozen=True)
class Component:
    """Shared fields of every component entry.

    Args:
        name: A Python identifier, unique within its kind (``zoo run`` uses it).
        description: One line for ``zoo list``.
        build: The builder; its signature depends on the kind.
        params: The parameters the builder accepts, with types and defaults.
    """

    name: str
    description: str
    build: Callable[..., Any]
    params: Sequence[Param] = ()

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
    """

    min_image_size: int = 1

    kind = "backbone"


@dataclass(frozen=True)
class Head(Component):
    """The layers on top of the backbone, with their loss and metrics.

    The builder is ``build(features: keras.KerasTensor, num_classes: int, params: dict)
    -> BuiltHead``.

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


COMPONENT_TYPES: Mapping[str, type[Component]] = {
    "dataset": Dataset,
    "backbone": Backbone,
    "head": Head,
}
