"""What a dataset holds, said before training: its classes, examples per split and class,
what would make the results hard to trust, and the files it could not read.

:func:`summarize` reads a built :class:`~zoo.components.Splits` (no data is touched):
``zoo run`` shows the summary before the first epoch and records it in metrics.json.
The per-class counts and the names of unreadable files come from the dataset when it
gives them (``Splits.class_counts``, ``Splits.unreadable``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zoo.components import Splits

SPLITS = ("train", "validation", "test")
#: A class with this many times fewer training examples than the largest is flagged:
#: below about 20% of two classes, a model learns to seldom predict it.
IMBALANCE_RATIO = 4.0
#: Below this many examples, one example is more than a point of accuracy.
SMALL_SPLIT = 100


@dataclass(frozen=True)
class DataSummary:
    """A dataset's splits as zoo reports them.

    Args:
        class_counts: Examples per class of each split, in label order; empty when the
            dataset does not say.
        unreadable: Each skipped file with the reason, when the dataset names them.
        warnings: What makes the results hard to trust, one sentence each.
    """

    class_names: list[str]
    sizes: dict[str, int]
    class_counts: dict[str, list[int]]
    skipped: int
    unreadable: dict[str, str]
    version: str | None
    fingerprint: str | None
    warnings: list[str]

    def points_per_example(self, split: str) -> float | None:
        """Accuracy points one example of ``split`` is worth (100 examples: 1.0)."""
        size = self.sizes.get(split)
        return 100 / size if size else None

    def to_dict(self) -> dict[str, Any]:
        """As metrics.json's ``dataset`` holds it."""
        return {
            "class_names": self.class_names,
            "sizes": self.sizes,
            "class_counts": {
                split: dict(zip(self.class_names, counts, strict=True))
                for split, counts in self.class_counts.items()
            },
            "skipped": self.skipped,
            "unreadable": [{"file": f, "reason": r} for f, r in self.unreadable.items()],
            "version": self.version,
            "fingerprint": self.fingerprint,
            "warnings": self.warnings,
        }


def summarize(splits: Splits) -> DataSummary:
    """The summary of a dataset's built ``splits``."""
    names = list(splits.class_names)
    counts = {split: list(c) for split, c in splits.class_counts.items()}
    sizes = {split: splits.sizes[split] for split in SPLITS if split in splits.sizes}
    return DataSummary(
        class_names=names,
        sizes=sizes,
        class_counts=counts,
        skipped=max(splits.skipped, len(splits.unreadable)),
        unreadable=dict(splits.unreadable),
        version=splits.version,
        fingerprint=splits.fingerprint,
        warnings=[
            *imbalance(names, counts.get("train") or []),
            *absent_classes(names, counts),
            *small_splits(sizes),
        ],
    )


def imbalance(names: Sequence[str], counts: Sequence[int]) -> list[str]:
    """A warning for the classes with :data:`IMBALANCE_RATIO` times fewer training
    examples than the largest."""
    if not counts:
        return []
    largest = max(range(len(counts)), key=counts.__getitem__)
    few = [i for i, n in enumerate(counts) if n * IMBALANCE_RATIO <= counts[largest]]
    if not few:
        return []
    listed = ", ".join(f"'{names[i]}' ({counts[i]})" for i in few)
    smallest = min(counts[i] for i in few)
    ratio = f"{counts[largest] / smallest:.0f} times" if smallest else "infinitely"
    return [
        f"the classes are imbalanced: {listed} against '{names[largest]}' "
        f"({counts[largest]}) training examples, up to {ratio} fewer; the model may "
        "seldom predict the small classes. Add examples of them, or weight the classes "
        "(class weights 'balanced'), and judge by per-class recall, not accuracy alone"
    ]


def absent_classes(names: Sequence[str], counts: Mapping[str, Sequence[int]]) -> list[str]:
    """A warning per evaluation split that lacks a class: its recall cannot be measured."""
    warnings = []
    for split in ("validation", "test"):
        missing = [name for name, n in zip(names, counts.get(split) or [], strict=False) if not n]
        if missing:
            warnings.append(
                f"the {split} split has no examples of {', '.join(map(repr, missing))}: "
                "how well the model finds them cannot be measured there"
            )
    return warnings


def small_splits(sizes: Mapping[str, int]) -> list[str]:
    """A warning per evaluation split under :data:`SMALL_SPLIT` examples."""
    return [
        f"the {split} split has only {size} examples: each is {100 / size:.1f} points of "
        f"accuracy, too coarse to tell close results apart ({SMALL_SPLIT} or more make "
        "one example worth a point or less; a dataset that splits one pool of images "
        f"holds out more with --set dataset.{split}_fraction=0.2)"
        for split in ("validation", "test")
        if 0 < (size := sizes.get(split, 0)) < SMALL_SPLIT
    ]
