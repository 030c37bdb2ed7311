"""What a trial's model costs to run: milliseconds per image, on this machine.

A trial's own model is not kept (its run saves none), and every trial of one backbone
and head at one image size runs the same graph, so the latency is measured once per
such combination, on a model built for it: one image at a time (what serving one
request costs), the median of :data:`REPEATS` calls after a warm-up, on the CPU or
accelerator the trials train on.
"""

from __future__ import annotations

import json
import statistics
import time

from zoo.model import assemble
from zoo.runconfig import Resolved

REPEATS = 20
_MEASURED: dict[str, float] = {}


def key(resolved: Resolved, num_classes: int) -> str:
    """What the latency depends on: the backbone and its parameters, the head, the
    image size, the number of classes."""
    config = resolved.config
    parts = [config.backbone.name, dict(config.backbone.params), config.head.name]
    return json.dumps([*parts, config.image_size, num_classes], sort_keys=True, default=str)


def measured(resolved: Resolved, num_classes: int) -> float:
    """Milliseconds per image for ``resolved``'s model, measured once per :func:`key`."""
    found = key(resolved, num_classes)
    if found not in _MEASURED:
        _MEASURED[found] = _measure(resolved, num_classes)
    return _MEASURED[found]


def _measure(resolved: Resolved, num_classes: int) -> float:
    from zoo.runtime.loader import keras, tf

    model = assemble.build_model(resolved, num_classes).model
    image = tf.zeros((1, *resolved.config.image_shape), dtype=tf.uint8)
    call = tf.function(lambda x: model(x, training=False))
    for _ in range(3):  # traced, then warm
        call(image)
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        _ = call(image).numpy()
        times.append(time.perf_counter() - started)
    keras.backend.clear_session(free_memory=True)
    return round(statistics.median(times) * 1000, 3)
