"""Split fractions: the shares of one pool of images held out for validation and test.

A dataset that splits one pool (a folder of class folders, TFDS's ``train``, generated
images) declares :data:`PARAMS`, ``validation_fraction`` and ``test_fraction`` (0.1
each: 80/10/10), and reads them with :func:`carved`. Being parameters, they are checked
like any other, recorded in the run's config.json and part of the feature-cache key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import zoo

T = TypeVar("T")

SPLITS = ("validation", "test")
DEFAULT = 0.1

PARAMS: tuple[zoo.Param, ...] = tuple(
    zoo.Param(
        f"{split}_fraction",
        float,
        DEFAULT,
        f"the share of the images held out for {split}: above 0, and with the other "
        f"fraction below 1 (unused when the data has its own {split} split)",
        below=1,
    )
    for split in SPLITS
)


def carved(dataset: str, params: Mapping[str, Any], own: Mapping[str, str]) -> dict[str, float]:
    """The fraction of each split to carve from the pool, in order: validation, test.

    Args:
        dataset: The dataset's name, for messages.
        params: Its parameters; a fraction missing from them is the default.
        own: The splits the data has of its own, each with where it is, for messages:
            their fractions are not used (a warning says so when one was changed).

    Raises:
        ZooError: a fraction is 0 or less, or the carved ones leave no training images.
    """
    given = {split: float(params.get(f"{split}_fraction", DEFAULT)) for split in SPLITS}
    for split, where in own.items():
        if given[split] != DEFAULT:
            zoo.warning(
                f"{dataset}: {split}_fraction={given[split]:g} is not used: the {split} "
                f"split is the data's own ({where})."
            )
    fractions = {split: given[split] for split in SPLITS if split not in own}
    if min(given.values()) <= 0 or sum(fractions.values()) >= 1:
        raise _bad(dataset, given, fractions)
    return fractions


def _bad(dataset: str, given: Mapping[str, float], fractions: Mapping[str, float]) -> zoo.ZooError:
    empty = [split for split, fraction in given.items() if fraction <= 0]
    problem = (
        f"leave the {' and '.join(empty)} split{'s' * (len(empty) > 1)} empty"
        if empty
        else f"hold out {percent(sum(fractions.values()))} of the images, leaving none to train on"
    )
    values = ", ".join(f"{split}_fraction={fraction:g}" for split, fraction in given.items())
    return zoo.ZooError(
        f"{dataset}: the split fractions {values} {problem}.",
        expected="each fraction above 0, and the fractions carved from the images together "
        f"below 1 (the defaults, {DEFAULT:g} each, split 80/10/10)",
        fix="pass smaller or positive fractions, for example "
        "--set dataset.validation_fraction=0.2 --set dataset.test_fraction=0.1",
        got=values,
    )


def percent(fraction: float) -> str:
    """``0.1`` as ``10%``, ``0.125`` as ``12.5%``, never in exponent notation: for
    messages and TFDS split strings."""
    return f"{fraction * 100:.6f}".rstrip("0").rstrip(".") + "%"


def fewest(fraction: float) -> int:
    """The fewest images that give a share of at least one at ``fraction``, rounded half up
    (5 at 10%)."""
    return math.ceil(0.5 / fraction)


def share(count: int, fraction: float) -> int:
    """``fraction`` of ``count`` images, rounded half up: 5 images give 1 at 10%."""
    return int(count * fraction + 0.5)


def carve(
    per_class: Sequence[Sequence[T]], seed: int, fractions: Mapping[str, float]
) -> dict[str, list[list[T]]]:
    """Each class's items split into ``"train"`` and each split of ``fractions``, seeded.

    Each class is shuffled by ``seed`` and its label, then validation takes its share
    first, test the next, train the rest. Items should come in a fixed order (sorted
    paths, say), so that the split depends only on the seed and on them.
    """
    import numpy as np

    carved: dict[str, list[list[T]]] = {"train": [], **{split: [] for split in fractions}}
    for label, items in enumerate(per_class):
        order = [items[i] for i in np.random.default_rng([seed, label]).permutation(len(items))]
        start = 0
        for split, fraction in fractions.items():
            carved[split].append(order[start : start + share(len(items), fraction)])
            start += len(carved[split][-1])
        carved["train"].append(order[start:])
    return carved


def empty(dataset: str, split: str, where: str, fraction: float | None) -> zoo.ZooError:
    """The error for a split without images: the data's own (``fraction`` ``None``), or
    one carved per class from too few images."""
    if fraction is None:
        return zoo.ZooError(
            f"{dataset}: the {split} split, {where}, has no readable image.",
            expected="at least one readable image in every split",
            fix=f"add images to {where}, or remove it to carve the {split} split from train",
            got=where,
        )
    return zoo.ZooError(
        f"{dataset}: the {split} split carved from {where} is empty.",
        expected=f"enough images for a {percent(fraction)} {split} share "
        f"({fewest(fraction)} or more in a class)",
        fix=f"add images, or raise dataset.{split}_fraction",
        got=f"{split}_fraction={fraction:g}",
    )
