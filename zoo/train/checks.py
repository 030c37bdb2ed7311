"""Setups that cannot learn, or not well, found before training: warnings with a fix.

- A frozen backbone whose weights are random (``BuiltBackbone.pretrained`` is
  ``False``): the head can only learn from random features.
- A trainable backbone with BatchNormalization that trains too few steps for its moving
  statistics to settle: validation and test use those statistics, so they can sit near
  chance while training accuracy climbs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from zoo.runtime.loader import keras
from zoo.train.events import RunWarning

if TYPE_CHECKING:
    from zoo.components import Backbone
    from zoo.model.assemble import Assembled
    from zoo.registry import Entry

#: Moving statistics have settled when their starting values weigh less than this.
SETTLED = 0.05


def warnings(
    backbone: Entry[Backbone], assembled: Assembled, epochs: int, steps_per_epoch: int | None
) -> list[RunWarning]:
    """Every warning that applies to a run about to train ``epochs`` epochs."""
    found = [
        frozen_random_backbone(backbone, assembled),
        batch_norm_few_steps(backbone.name, assembled, epochs, steps_per_epoch),
    ]
    return [warning for warning in found if warning is not None]


def frozen_random_backbone(backbone: Entry[Backbone], assembled: Assembled) -> RunWarning | None:
    """A frozen backbone that loaded no trained weights."""
    pretrained = assembled.pretrained
    if pretrained is None and assembled.weights_file:
        pretrained = True
    if not assembled.backbone_frozen or pretrained is not False:
        return None
    fixes = []
    weights = backbone.component.param("weights")
    if weights is not None and str(weights.default).lower() != "none":
        fixes.append(f"load trained weights (--set backbone.weights={weights.default})")
    if backbone.component.param("trainable") is not None:
        fixes.append("train the backbone too (--set backbone.trainable=true)")
    return RunWarning(
        code="frozen_random_backbone",
        message=f"backbone '{backbone.name}' is frozen and its weights are random, not "
        "trained: the head can only learn from random features, and is likely to stay "
        "near chance.",
        fix=" or ".join(fixes) or "use a pretrained backbone (`zoo list backbones`)",
    )


def batch_norm_few_steps(
    name: str, assembled: Assembled, epochs: int, steps_per_epoch: int | None
) -> RunWarning | None:
    """A trainable backbone whose BatchNormalization statistics cannot settle in time."""
    norms = [
        layer
        for layer in _all_layers(assembled.backbone)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]
    if assembled.backbone_frozen or not norms or steps_per_epoch is None:
        return None
    momentum = max(float(layer.momentum) for layer in norms)
    needed = settling_steps(momentum)
    steps = epochs * steps_per_epoch
    if steps >= needed:
        return None
    return RunWarning(
        code="batch_norm_few_steps",
        message=f"backbone '{name}' trains {len(norms)} BatchNormalization layers for only "
        f"{steps} steps ({epochs} epochs of {steps_per_epoch}); their moving statistics "
        f"(momentum {momentum:g}) need about {needed} steps to settle, and validation and "
        "test use them, so they can stay near chance while training accuracy climbs.",
        fix=f"train at least {needed} steps (more --epochs, or a smaller --batch-size), or "
        "freeze a pretrained backbone (--set backbone.trainable=false) and fine-tune its "
        "top afterwards (--fine-tune-layers N --fine-tune-epochs E keeps BatchNormalization "
        "frozen)",
    )


def settling_steps(momentum: float) -> int:
    """Steps after which a moving average's starting value weighs below :data:`SETTLED`:
    ``momentum ** n < SETTLED``; 299 for Keras's default momentum of 0.99."""
    return math.ceil(math.log(SETTLED) / math.log(momentum)) if 0 < momentum < 1 else 1


def _all_layers(model: Any) -> Iterator[Any]:
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _all_layers(layer)
