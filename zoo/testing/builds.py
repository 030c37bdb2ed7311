"""Building each component on a tiny input, as ``zoo run`` would: zoo.testing's checks
of datasets, backbones and heads. Imports TensorFlow and Keras.

Each check files every problem it finds through a :class:`zoo.testing.contracts.Found`
and carries on, so a report lists them all.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from zoo.components import TOKEN_POOLING, BuiltBackbone, BuiltHead, Splits
from zoo.errors import ZooError, describe_error
from zoo.model.layers import as_layer
from zoo.registry import Entry
from zoo.runtime.loader import keras, tf, without_autotuning
from zoo.testing.contracts import (
    FAILED,
    Found,
    Settings,
    check_declaration,
    check_downloads,
    resolved,
)
from zoo.testing.observing import check_observer

SPLITS = ("train", "validation", "test")
#: The feature shapes a head is built on: a small feature map [h, w, c], a feature
#: vector [c] and a token sequence [tokens, c] (vision transformers).
FEATURE_SHAPES = ((4, 4, 8), (8,), (5, 8))


def check_component(
    entry: Entry, overrides: Mapping[str, Any], found: Found, settings: Settings, build: bool
) -> None:
    """Check ``entry``'s declaration and, when ``build``, build it on a tiny input.

    Parameters are resolved only for building: a component not built (a dataset that
    needs the network, say) need not be given its required values.
    """
    check_declaration(entry, found)
    check_downloads(entry, overrides, found)
    if not build:
        return
    values = resolved(entry, overrides, found)
    if values is not None:
        CHECKS[entry.kind](entry, values, found, settings)


# --- Datasets -----------------------------------------------------------------------


def _check_dataset(entry: Entry, values: dict[str, Any], found: Found, settings: Settings) -> None:
    splits = found.call("build", lambda: entry.component.build(values))
    if splits is FAILED:
        return
    if not isinstance(splits, Splits):
        found("build", f"returned {type(splits).__name__}, not zoo.Splits")
        return
    names = _class_names(splits, found)
    declared = entry.component.class_names
    if declared is not None:
        answer = found.call("class_names", lambda: list(declared(values)))
        if answer is not FAILED and answer != names:
            found("class_names", f"class_names(params) gives {answer}; the splits have {names}")
    for split in SPLITS:
        _check_split(split, getattr(splits, split), len(names), splits.sizes, found, settings)


def _class_names(splits: Splits, found: Found) -> list[str]:
    names = list(splits.class_names)
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        found("class_names", f"must be distinct non-empty strings, one per label; got {names}")
    if len(names) < 2:
        found("class_names", f"a classifier needs two or more classes; got {names}")
    return names


def _check_split(
    split: str,
    data: Any,
    num_classes: int,
    sizes: Mapping[str, int],
    found: Found,
    settings: Settings,
) -> None:
    if not isinstance(data, tf.data.Dataset):
        found(split, f"is {type(data).__name__}, not a tf.data.Dataset")
        return
    wrong = _spec_problem(data.element_spec)
    if wrong:
        found(split, wrong)
        return
    first = without_autotuning(data.take(settings.max_examples))
    examples = found.call(split, lambda: list(first.as_numpy_iterator()))
    if examples is FAILED:
        return
    if not examples:
        found(split, "is empty")
        return
    labels = sorted({int(label) for _, label in examples if not 0 <= label < num_classes})
    if labels:
        found(split, f"has labels {labels[:5]} outside 0..{num_classes - 1} (one per class)")
    shapes = [image.shape for image, _ in examples if image.ndim != 3 or min(image.shape) < 1]
    if shapes:
        found(split, f"has an image of shape {shapes[0]}")
    counted, size = len(examples), sizes.get(split)
    complete = counted < settings.max_examples
    if size is None:
        found("sizes", f"has no entry for '{split}'")
    elif (complete and size != counted) or size < counted:
        found("sizes", f"says '{split}' has {size} examples; it has {counted}")


def _spec_problem(spec: Any) -> str | None:
    """What is wrong with a split's element spec, or ``None``."""
    if not (isinstance(spec, tuple) and len(spec) == 2):
        return f"yields {spec}, not (image, label) pairs"
    image, label = spec
    if image.dtype != tf.uint8:
        return f"yields {image.dtype.name} images, not uint8 (raw pixels 0..255)"
    if image.shape.rank != 3 or image.shape[-1] not in (3, None):
        return f"yields images of shape {image.shape}, not [height, width, 3] (unbatched)"
    if not label.dtype.is_integer or label.shape.rank != 0:
        return f"yields labels {label.dtype.name} {label.shape}, not integer scalars"
    return None


# --- Backbones ----------------------------------------------------------------------


def _check_backbone(entry: Entry, values: dict[str, Any], found: Found, settings: Settings) -> None:
    smallest = entry.component.min_image_size
    for size in sorted({smallest, max(smallest, settings.image_size)}):
        _check_backbone_at(entry, values, found, size)


def _check_backbone_at(entry: Entry, values: dict[str, Any], found: Found, size: int) -> None:
    at = f"at {size}x{size}"
    built = found.call(f"build {at}", lambda: entry.component.build((size, size, 3), values))
    if built is FAILED:
        return
    wrong = _wrong_type(built, BuiltBackbone, "model", keras.Model)
    if wrong:
        found(f"build {at}", wrong)
        return
    trainable = values.get("trainable")
    if isinstance(trainable, bool) and built.model.trainable != trainable:
        found("trainable", f"the parameter is {trainable}, model.trainable is not")
    images = np.random.default_rng(0).integers(0, 256, (2, size, size, 3)).astype("float32")
    features = found.call(
        f"forward pass {at}",
        lambda: keras.ops.convert_to_numpy(built.model(as_layer(built.preprocessing)(images))),
    )
    if features is FAILED:
        return
    if features.ndim not in (2, 3, 4) or features.shape[0] != 2:
        found(
            f"output {at}",
            f"has shape {features.shape}; expected [batch, c], [batch, tokens, c] "
            "or [batch, h, w, c]",
        )
    elif not np.issubdtype(features.dtype, np.floating) or not np.isfinite(features).all():
        found(f"output {at}", f"must be finite floats; got {features.dtype} with NaN or inf")
    if built.token_pooling not in (None, *TOKEN_POOLING):
        found("token_pooling", f"is {built.token_pooling!r}; expected None or {TOKEN_POOLING}")


# --- Heads --------------------------------------------------------------------------


def _check_head(entry: Entry, values: dict[str, Any], found: Found, settings: Settings) -> None:
    head = entry.component
    least = head.min_classes
    more = least + 1 if head.supports(least + 1) else least
    refusals = []
    for shape, num_classes in zip(FEATURE_SHAPES, itertools.cycle((least, more))):
        refusal = _check_head_on(entry, values, found, shape, num_classes)
        if refusal:
            refusals.append(f"{shape}: {refusal}")
    if len(refusals) == len(FEATURE_SHAPES):
        found("build", "refused every feature shape tried: " + "; ".join(refusals))


def _check_head_on(
    entry: Entry, values: dict[str, Any], found: Found, shape: tuple[int, ...], num_classes: int
) -> str | None:
    """Build and train the head one step; return why it refused ``shape``, if it did."""
    on = f"on features {list(shape)} with {num_classes} classes"
    features = keras.Input(shape, name="features")
    try:
        built = entry.component.build(features, num_classes, values)
    except ZooError as exc:
        return exc.what
    except Exception as exc:
        found(f"build {on}", f"raised {describe_error(exc)}")
        return None
    wrong = _wrong_type(built, BuiltHead, "outputs", keras.KerasTensor)
    if wrong:
        found(f"build {on}", wrong)
        return None
    widths = (num_classes, 1) if num_classes == 2 else (num_classes,)
    if len(built.outputs.shape) != 2 or built.outputs.shape[1] not in widths:
        found(f"output {on}", f"has shape {built.outputs.shape}; expected (None, {num_classes})")
    if "float" not in str(built.outputs.dtype):
        found(f"output {on}", f"is {built.outputs.dtype}, not floating point")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, *shape)).astype("float32")
    y = np.arange(4) % num_classes
    logs = found.call(f"training step {on}", lambda: _train_step(features, built, x, y))
    if logs is not FAILED and not np.isfinite(logs["loss"]):
        found(f"training step {on}", f"the loss is {logs['loss']}, not finite")
    if built.pooled is not None:
        wrong = found.call(f"pooled {on}", lambda: _pooled_problem(features, built, x))
        if wrong not in (None, FAILED):
            found(f"pooled {on}", wrong)
    return None


def _pooled_problem(features: Any, built: BuiltHead, x: Any) -> str | None:
    """What breaks ``BuiltHead.pooled``'s promise, or ``None``: a ``[batch, c]`` vector
    from weightless, deterministic pooling, through which alone the outputs depend on
    the features, so the head on the pooled vector answers as the whole head."""
    pooled = built.pooled
    if not isinstance(pooled, keras.KerasTensor) or len(pooled.shape) != 2:
        return f"is {getattr(pooled, 'shape', type(pooled).__name__)}, not a [batch, c] tensor"
    try:
        after = keras.Model(pooled, built.outputs)
    except ValueError:
        return "the outputs depend on the features other than through it"
    pooling = keras.Model(features, pooled)
    if pooling.weights:
        return f"the pooling before it holds weights: {[w.path for w in pooling.weights]}"
    vectors = keras.ops.convert_to_numpy(pooling(x, training=False))
    if not np.allclose(keras.ops.convert_to_numpy(pooling(x, training=True)), vectors):
        return "the pooling before it is random in training (dropout belongs after it)"
    whole = keras.ops.convert_to_numpy(keras.Model(features, built.outputs)(x, training=False))
    split = keras.ops.convert_to_numpy(after(vectors, training=False))
    if not np.allclose(split, whole, rtol=1e-5, atol=1e-6):
        return "the head on the pooled vector does not answer as the whole head"
    return None


def _train_step(features: Any, built: BuiltHead, x: Any, y: Any) -> dict[str, float]:
    model = keras.Model(features, built.outputs)
    model.compile(optimizer="sgd", loss=built.loss, metrics=list(built.metrics))
    return model.train_on_batch(x, y, return_dict=True)


def _wrong_type(built: Any, expected: type, attribute: str, inner: type) -> str | None:
    """What is wrong with the type of a builder's result or of its main attribute."""
    if not isinstance(built, expected):
        return f"returned {type(built).__name__}, not zoo.{expected.__name__}"
    value = getattr(built, attribute)
    if not isinstance(value, inner):
        return f"{expected.__name__}.{attribute} is {type(value).__name__}, not {inner.__name__}"
    return None


CHECKS: Mapping[str, Callable[[Entry, dict[str, Any], Found, Settings], None]] = {
    "dataset": _check_dataset,
    "backbone": _check_backbone,
    "head": _check_head,
    "observer": check_observer,
}
