"""Assembling a backbone and a head into one Keras model, and counting its parameters.

The assembled model takes raw pixels (float32, 0..255, ``image_size`` square) and runs
the backbone's preprocessing, the backbone, and the head, so a saved model predicts
from raw images exactly as it was trained. The head is a model of its own so that it
can also be trained on cached backbone features. Importing it imports Keras.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from zoo.components import TOKEN_POOLING, BuiltBackbone, BuiltHead, Splits
from zoo.errors import ZooError, describe_error
from zoo.model.layers import as_layer
from zoo.registry import Entry
from zoo.runconfig import Resolved
from zoo.runtime.loader import keras


class ComponentError(ZooError):
    """A component's builder raised, or returned the wrong thing."""

    exit_code = 1


@dataclass(frozen=True)
class LayerRow:
    """One line of a model summary (``console.model_summary`` shows them)."""

    name: str
    type: str
    output_shape: str
    params: int
    trainable: bool


@dataclass(frozen=True)
class Pooled:
    """A head that begins with global pooling (``BuiltHead.pooled``), cut in two.

    Args:
        pooling: The head's pooling: backbone features to the pooled vector (no weights).
        features: Raw pixels to the pooled vector: preprocessing, backbone, pooling.
        head: The rest of the head, pooled vector to outputs; it shares the head's layers.
    """

    pooling: keras.Model
    features: keras.Model
    head: keras.Model


@dataclass(frozen=True)
class Assembled:
    """The model, its parts, and what to compile it with.

    ``pooled`` is set when the head begins with global pooling: then features are
    cached pooled.
    """

    model: keras.Model
    backbone: keras.Model
    head: keras.Model
    features: keras.Model
    preprocessing: keras.layers.Layer
    loss: Any
    metrics: list[Any]
    weights_file: str | None = None
    pretrained: bool | None = None
    pooled: Pooled | None = None
    #: What training minimises: ``loss`` with its labels smoothed (``label_smoothing``),
    #: or ``None`` for ``loss`` itself. Validation and test use ``loss``.
    training_loss: Any = None

    @property
    def backbone_frozen(self) -> bool:
        return not self.backbone.trainable_weights


def build_splits(resolved: Resolved) -> Splits:
    """Call the dataset's builder and check what it returns."""
    entry = resolved.dataset
    splits = call_builder(entry, resolved.config.dataset.params)
    _expect(entry, splits, Splits, "zoo.Splits")
    _check_listings(entry, splits)
    return splits


def _check_listings(entry: Entry, splits: Splits) -> None:
    """The optional ``files`` and ``class_counts`` agree with the sizes and the classes."""
    sizes, classes = splits.sizes, splits.num_classes
    wrong = [
        f"files['{split}'] names {len(names)} examples, sizes['{split}'] is {sizes[split]}"
        for split, names in splits.files.items()
        if split in sizes and len(names) != sizes[split]
    ]
    wrong += [
        f"class_counts['{split}'] is {list(counts)}, for {classes} classes and "
        f"{sizes.get(split, '?')} examples"
        for split, counts in splits.class_counts.items()
        if len(counts) != classes or (split in sizes and sum(counts) != sizes[split])
    ]
    if wrong:
        raise ComponentError(
            f"dataset '{entry.name}' from plugin {entry.plugin.provider} returned Splits "
            f"that disagree with themselves: {'; '.join(wrong)}.",
            expected="one file name per example, one count per class, adding up to the size",
            fix="report it to the plugin's authors",
            got=wrong,
        )


def build_model(resolved: Resolved, num_classes: int) -> Assembled:
    """Build backbone and head and join them; nothing is compiled yet."""
    config = resolved.config
    built = build_backbone(resolved.backbone, config.image_shape, config.backbone.params)
    preprocessing = _wrap(
        resolved.backbone, lambda: as_layer(built.preprocessing, config.image_shape)
    )

    inputs = keras.Input(config.image_shape, name="image")
    features = _wrap(resolved.backbone, lambda: built.model(preprocessing(inputs)))
    feature_input = keras.Input(features.shape[1:], name="features")
    head_params = with_token_pooling(resolved.backbone, built, config.head.params)
    head_out = call_builder(resolved.head, feature_input, num_classes, head_params)
    _expect(resolved.head, head_out, BuiltHead, "zoo.BuiltHead")
    outputs = _wrap(resolved.head, lambda: _float32(head_out.outputs))
    head = _wrap(resolved.head, lambda: keras.Model(feature_input, outputs, name="head"))
    model = keras.Model(inputs, head(features), name=f"{config.backbone.name}_{config.head.name}")
    pooled = None
    if head_out.pooled is not None:
        pooling, rest = _split_pooling(resolved.head, feature_input, head_out.pooled, outputs)
        pooled_features = keras.Model(inputs, pooling(features), name="pooled_features")
        pooled = Pooled(pooling=pooling, features=pooled_features, head=rest)
    return Assembled(
        model=model,
        backbone=built.model,
        head=head,
        features=keras.Model(inputs, features, name="features"),
        preprocessing=preprocessing,
        loss=head_out.loss,
        metrics=list(head_out.metrics),
        weights_file=built.weights_file,
        pretrained=built.pretrained,
        pooled=pooled,
        training_loss=smoothed(resolved.head, head_out.loss, config.label_smoothing),
    )


def _split_pooling(
    entry: Entry, features: Any, pooled: Any, outputs: Any
) -> tuple[keras.Model, keras.Model]:
    """The head cut after its pooling; a head whose declaration does not hold is refused."""

    def refuse(why: str) -> ComponentError:
        return ComponentError(
            f"head '{entry.name}' from plugin {entry.plugin.provider} declares "
            f"BuiltHead.pooled, but {why}.",
            expected="pooled: the [batch, c] output of a weightless global pooling of the "
            "features, through which alone the outputs depend on them",
            fix="report it to the plugin's authors",
        )

    if not isinstance(pooled, keras.KerasTensor) or len(pooled.shape) != 2:
        raise refuse(f"it is {getattr(pooled, 'shape', type(pooled).__name__)}, not [batch, c]")
    try:
        pooling = keras.Model(features, pooled, name="head_pooling")
        rest = keras.Model(pooled, outputs, name="head_after_pooling")
    except ValueError as exc:
        raise refuse(f"the head cannot be cut there ({describe_error(exc)})") from exc
    if pooling.weights:
        raise refuse(f"its pooling holds weights ({', '.join(w.path for w in pooling.weights)})")
    return pooling, rest


def build_backbone(
    entry: Entry, image_shape: tuple[int, int, int], params: Mapping[str, Any]
) -> BuiltBackbone:
    """Call a backbone's builder and check what it returns."""
    built = call_builder(entry, image_shape, params)
    _expect(entry, built, BuiltBackbone, "zoo.BuiltBackbone")
    _expect(entry, built.model, keras.Model, "a keras.Model in BuiltBackbone.model")
    return built


def with_token_pooling(
    backbone: Entry, built: BuiltBackbone, params: Mapping[str, Any]
) -> dict[str, Any]:
    """The head's parameters, ``token_pooling="auto"`` replaced by the backbone's choice."""
    declared = built.token_pooling
    if declared is not None and declared not in TOKEN_POOLING:
        raise ComponentError(
            f"backbone '{backbone.name}' from plugin {backbone.plugin.provider} declares "
            f"token_pooling={declared!r}.",
            expected=f"None or one of {', '.join(TOKEN_POOLING)}",
            fix="report it to the plugin's authors",
            got=declared,
        )
    if declared is None or params.get("token_pooling") != "auto":
        return dict(params)
    return {**params, "token_pooling": declared}


def make_optimizer(
    name: str,
    learning_rate: Any,
    precision: str = "float32",
    *,
    weight_decay: float = 0.0,
    ema_momentum: float | None = None,
) -> Any:
    """The optimizer ``name`` at ``learning_rate`` (a rate or a schedule); under float16
    wrapped to scale the loss against underflow.

    ``weight_decay`` is Keras's decoupled decay, which every Keras optimizer applies
    alike (``w -= w * rate * decay`` before each update; ``adamw`` is ``adam`` with it).
    ``ema_momentum`` keeps Keras's moving average of the weights (``use_ema``), which
    :func:`swap_average` puts in the model.
    """
    config: dict[str, Any] = {"learning_rate": learning_rate}
    if weight_decay or name == "adamw":  # AdamW wants a number, even 0
        config["weight_decay"] = weight_decay
    if ema_momentum is not None:
        config.update(use_ema=True, ema_momentum=ema_momentum)
    optimizer = keras.optimizers.get({"class_name": name, "config": config})
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def swap_average(optimizer: Any) -> bool:
    """Swap the weights ``optimizer`` trains with its moving average of them, and say
    whether it keeps one. Keras's ``SwapEMAWeights`` swaps the same variables by adding
    and subtracting, which rounds; copying lets a resume continue bit for bit."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # under LossScaleOptimizer
    if not getattr(inner, "use_ema", False):
        return False
    pairs = zip(inner._trainable_variables, inner._model_variables_moving_average, strict=True)
    for weights, average in pairs:
        trained = keras.ops.convert_to_numpy(weights)
        weights.assign(average)
        average.assign(trained)
    return True


def smoothed(head: Entry, loss: Any, label_smoothing: float) -> Any:
    """``loss`` with labels of ``1 - F`` on the true class plus ``F / K`` on each of the
    ``K`` classes (``None`` for ``F = 0``): Keras's ``label_smoothing`` of binary
    cross-entropy, and of categorical cross-entropy on one-hot labels for sparse
    categorical cross-entropy, whose Keras class has none. Used only in training, it is
    never saved with the model; a head with another loss is refused."""
    if not label_smoothing:
        return None
    name, from_logits = _cross_entropy(loss)
    if name == "binary_crossentropy":
        return keras.losses.BinaryCrossentropy(
            from_logits=from_logits, label_smoothing=label_smoothing
        )
    if name == "sparse_categorical_crossentropy":
        return functools.partial(
            _smoothed_sparse, from_logits=from_logits, smoothing=label_smoothing
        )
    raise ZooError(
        f"--label-smoothing needs a cross-entropy loss; head '{head.name}' from plugin "
        f"{head.plugin.provider} trains with {loss!r}.",
        expected="a head whose loss is binary or sparse categorical cross-entropy",
        fix="leave out --label-smoothing, or pick another head",
        got=label_smoothing,
    )


def _cross_entropy(loss: Any) -> tuple[str | None, bool]:
    """Which cross-entropy ``loss`` is (a name, a Keras function or object), if any, and
    whether it takes logits."""
    for name in ("binary_crossentropy", "sparse_categorical_crossentropy"):
        function = getattr(keras.losses, name)
        if loss == name or loss is function:
            return name, False
        if isinstance(loss, keras.losses.Loss) and getattr(loss, "fn", None) is function:
            return name, bool(loss.get_config().get("from_logits"))
    return None, False


def _smoothed_sparse(labels: Any, outputs: Any, *, from_logits: bool, smoothing: float) -> Any:
    one_hot = keras.ops.one_hot(keras.ops.reshape(labels, [-1]), outputs.shape[-1])
    return keras.losses.categorical_crossentropy(
        one_hot, outputs, from_logits=from_logits, label_smoothing=smoothing
    )


def _float32(outputs: Any) -> Any:
    """The head's outputs in float32: a float16 sigmoid saturates and breaks the loss."""
    if outputs.dtype == "float32":
        return outputs
    return keras.layers.Activation("linear", dtype="float32", name="output_float32")(outputs)


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Total, trainable and non-trainable parameters, counted as Keras counts them."""
    trainable = sum(_size(w) for w in model.trainable_weights)
    non_trainable = sum(_size(w) for w in model.non_trainable_weights)
    return {
        "total": trainable + non_trainable,
        "trainable": trainable,
        "non_trainable": non_trainable,
    }


def summary_rows(model: keras.Model) -> list[LayerRow]:
    """One row per layer; the head model is opened up, as the tutorial's summary shows it."""
    rows = []
    for layer in model.layers:
        if layer.name == "head" and hasattr(layer, "layers"):
            rows += [_row(sub, prefix="head/") for sub in layer.layers[1:]]
        else:
            rows.append(_row(layer))
    return rows


def _row(layer: Any, prefix: str = "") -> LayerRow:
    try:
        shape = str(tuple(layer.output.shape))
    except (AttributeError, ValueError):
        shape = "?"
    return LayerRow(
        name=prefix + layer.name,
        type=type(layer).__name__,
        output_shape=shape.replace("None", "batch"),
        params=layer.count_params() if layer.built else 0,
        trainable=bool(layer.trainable_weights),
    )


def _size(weight: Any) -> int:
    size = 1
    for dim in weight.shape:
        size *= int(dim)
    return size


def call_builder(entry: Entry, *args: Any) -> Any:
    """Run ``entry``'s builder; a failure names the component and its plugin."""
    return _wrap(entry, lambda: entry.component.build(*args))


def _wrap(entry: Entry, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except ZooError:
        raise
    except Exception as exc:
        raise ComponentError(
            f"{entry.kind} '{entry.name}' from plugin {entry.plugin.provider} failed: "
            f"{describe_error(exc)}.",
            expected=f"the {entry.kind} to build with the parameters given",
            fix="check its parameters (`zoo info "
            f"{entry.name}`); if they are right, report it to the plugin's authors "
            "(run with --verbose for the traceback)",
        ) from exc


def _expect(entry: Entry, value: Any, kind: type, what: str) -> None:
    if not isinstance(value, kind):
        raise ComponentError(
            f"{entry.kind} '{entry.name}' from plugin {entry.plugin.provider} returned "
            f"{type(value).__name__}, not {what}.",
            expected=what,
            fix="report it to the plugin's authors",
            got=type(value).__name__,
        )
