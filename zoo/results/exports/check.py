"""Checking an export with its own runtime against the Keras model it came from.

On the same images (:mod:`zoo.results.exports.samples`) both give probabilities; the
check reports how often their top-1 classes agree, the largest difference between their
probabilities, the accuracy of each, the file's size, and its latency per image at batch
1 on this machine (the median of repeated calls). A float export passes when no
probability differs by more than :data:`FLOAT_TOLERANCE`; a quantized one when its
accuracy drops by at most ``max_drop`` points.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras
    import numpy as np

    from zoo.results.exports.formats import Runner
    from zoo.results.exports.samples import Sample

#: The largest probability difference a float32 export may show.
FLOAT_TOLERANCE = 1e-4
#: Accuracy points a quantized export may lose by default (``--max-drop``).
MAX_DROP = 2.0
#: Timed calls at batch 1, after warm-up calls.
WARM_UP, TIMED = 3, 25


@dataclass
class Check:
    """One export's check: the numbers ``export.json`` holds and ``zoo export`` prints."""

    format: str
    quantization: str | None
    images: int
    source: str
    agreement: float
    max_difference: float
    accuracy_keras: float | None
    accuracy_export: float | None
    size_bytes: int
    latency_ms: float
    passed: bool
    reason: str
    accepted: bool = False

    @property
    def drop(self) -> float | None:
        """Accuracy points lost (negative: gained)."""
        if self.accuracy_keras is None or self.accuracy_export is None:
            return None
        return 100 * (self.accuracy_keras - self.accuracy_export)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "accuracy_drop_points": self.drop}


def check(
    model: keras.Model,
    runner: Runner,
    sample: Sample,
    *,
    fmt: str,
    quantization: str | None,
    files: list[Path],
    max_drop: float = MAX_DROP,
) -> Check:
    """Compare ``runner`` (the written file) with ``model`` on ``sample``."""
    import numpy as np

    reference = model.predict(sample.images, batch_size=32, verbose=0).astype(np.float32)
    exported = _run(runner, sample.images)
    before, after = (_accuracy(p, sample.labels) for p in (reference, exported))
    difference = float(np.max(np.abs(reference - exported)))
    result = Check(
        format=fmt,
        quantization=quantization,
        images=len(sample.images),
        source=sample.source,
        agreement=float(np.mean(_top1(reference) == _top1(exported))),
        max_difference=difference,
        accuracy_keras=before,
        accuracy_export=after,
        size_bytes=sum(path.stat().st_size for path in files),
        latency_ms=latency_ms(runner, sample.images[:1]),
        passed=True,
        reason="",
    )
    result.passed, result.reason = verdict(result, max_drop)
    return result


def verdict(result: Check, max_drop: float) -> tuple[bool, str]:
    """Whether ``result`` passes, and why (or why not) in words."""
    if result.quantization is None:
        within = result.max_difference <= FLOAT_TOLERANCE
        relation = "within" if within else "over"
        return within, (
            f"probabilities {relation} {FLOAT_TOLERANCE:g} of Keras' "
            f"(largest difference {result.max_difference:.2g})"
        )
    drop = result.drop
    if drop is None:  # no labels: agreement stands in for accuracy
        drop = 100 * (1 - result.agreement)
        what = "top-1 disagreement with Keras"
    else:
        what = "accuracy drop"
    ok = drop <= max_drop
    return ok, f"{what} {drop:.1f} points ({'within' if ok else 'over'} --max-drop {max_drop:g})"


def latency_ms(runner: Runner, image: np.ndarray) -> float:
    """The median time of one call at batch 1, in milliseconds."""
    batch = _as_input(runner, image)
    for _ in range(WARM_UP):
        runner(batch)
    times = []
    for _ in range(TIMED):
        start = time.perf_counter()
        runner(batch)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _run(runner: Runner, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    import numpy as np

    parts = [
        runner(_as_input(runner, images[start : start + batch_size]))
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(parts).astype(np.float32)


def _as_input(runner: Runner, images: np.ndarray) -> np.ndarray:
    """Pixels as the file takes them: uint8 files get them rounded, as a decoder gives."""
    import numpy as np

    if runner.input_dtype == "uint8":
        return np.clip(np.rint(images), 0, 255).astype(np.uint8)
    return images.astype(np.float32)


def _top1(probabilities: np.ndarray) -> np.ndarray:
    import numpy as np

    if probabilities.shape[-1] == 1:  # a sigmoid: the second class wins from 0.5 up
        return (probabilities[:, 0] >= 0.5).astype(np.int64)
    return np.argmax(probabilities, axis=-1)


def _accuracy(probabilities: np.ndarray, labels: np.ndarray | None) -> float | None:
    import numpy as np

    if labels is None:
        return None
    return float(np.mean(_top1(probabilities) == labels.astype(np.int64)))
