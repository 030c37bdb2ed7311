"""Scoring a classifier's predictions: what it confuses, per class, and where it errs most.

From each example's true label and the model's output, :func:`evaluate` computes the
confusion matrix, each class's precision, recall and F1, and the misclassified
examples, most confident first, named by their file when the dataset tells zoo the
files (``Splits.files``), else by their position in the split. :func:`draw` makes the
confusion matrix a PNG (matplotlib, Agg), written whole or not at all (a full disk
leaves no part of one). ``zoo run`` scores its test split this way, ``zoo evaluate`` a
saved run on its test split or on a new labelled folder.

Only NumPy is needed here; a model's outputs arrive as arrays.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.components import Splits
from zoo.errors import ZooError
from zoo.storage import os_errors
from zoo.storage.atomic import write_bytes

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

#: The confusion matrix of a run's test split, in its run directory.
FIGURE = "confusion_matrix.png"
#: Misclassified examples kept in a report, most confident first (the count is kept too).
MISTAKES_KEPT = 100


@dataclass(frozen=True)
class ClassScores:
    """One class: of the examples predicted as it, the share that are (``precision``);
    of its examples, the share found (``recall``); their harmonic mean (``f1``).

    A share with nothing to count is 0 (scikit-learn's ``zero_division=0``): a class
    never predicted has precision 0. A class neither present nor predicted has no
    scores (``None``) and is left out of the means.
    """

    name: str
    precision: float | None
    recall: float | None
    f1: float | None
    support: int


@dataclass(frozen=True)
class Mistake:
    """A misclassified example: its position in the data, its file if known, and the
    probabilities the model gave its predicted and its true class."""

    index: int
    file: str | None
    true: str
    predicted: str
    probability: float
    true_probability: float


@dataclass(frozen=True)
class Evaluation:
    """A model's predictions on one set of labelled examples, scored.

    Args:
        name: What was evaluated: ``test``, or a folder.
        class_names: One per label.
        confusion: ``confusion[true][predicted]``: examples counted per pair of classes.
        classes: Each class's scores, in label order.
        mistakes: The most confidently wrong examples, at most :data:`MISTAKES_KEPT`.
        misclassified: How many examples were wrong in all.
        figure: The confusion matrix's PNG, once drawn.
    """

    name: str
    class_names: list[str]
    confusion: list[list[int]]
    classes: list[ClassScores]
    mistakes: list[Mistake]
    misclassified: int
    figure: str | None = None

    @property
    def examples(self) -> int:
        return sum(map(sum, self.confusion))

    @property
    def accuracy(self) -> float | None:
        correct = sum(row[i] for i, row in enumerate(self.confusion))
        return correct / self.examples if self.examples else None

    def macro(self, score: str) -> float | None:
        """The mean of one score (``precision``, ``recall``, ``f1``) over the classes
        that have it."""
        values = [getattr(c, score) for c in self.classes if getattr(c, score) is not None]
        return sum(values) / len(values) if values else None

    def to_dict(self) -> dict[str, Any]:
        """As metrics.json and ``--json`` hold it."""
        return {
            "name": self.name,
            "examples": self.examples,
            "accuracy": self.accuracy,
            "class_names": self.class_names,
            "confusion_matrix": self.confusion,
            "classes": [asdict(c) for c in self.classes],
            "macro": {s: self.macro(s) for s in ("precision", "recall", "f1")},
            "misclassified": self.misclassified,
            "mistakes": [asdict(m) for m in self.mistakes],
            "figure": self.figure,
        }


def probabilities(outputs: np.ndarray) -> np.ndarray:
    """Per-class probabilities ``[examples, classes]`` from a head's outputs.

    A single output is a sigmoid, the probability of the second of two classes;
    several are a softmax over the classes.
    """
    import numpy as np

    outputs = np.asarray(outputs, dtype="float64")
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=1)
    return outputs


def evaluate(
    name: str,
    predictions: Iterable[tuple[np.ndarray, np.ndarray]],
    class_names: Sequence[str],
    files: Sequence[str] | None = None,
    figure: Path | None = None,
) -> Evaluation:
    """Score ``(outputs, labels)`` batches; draw the confusion matrix to ``figure``.

    Args:
        files: The file of each example, in order (``None``: examples are named by
            their position).

    Raises:
        ZooError: the model's outputs do not fit the classes.
    """
    import numpy as np

    batches = list(predictions)
    labels = np.concatenate([np.asarray(y).reshape(-1) for _, y in batches]).astype(int)
    probs = probabilities(np.concatenate([np.asarray(out) for out, _ in batches]))
    if probs.shape[1:] != (len(class_names),):
        raise ZooError(
            f"the model gives {probs.shape[1:]} outputs per example for "
            f"{len(class_names)} classes.",
            expected="one sigmoid output for two classes, or one softmax output per class",
            fix="check that the model and the class names come from the same run",
            got=list(class_names),
        )
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((len(class_names), len(class_names)), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    wrong = _mistakes(labels, predicted, probs, class_names, files)
    evaluation = Evaluation(
        name=name,
        class_names=list(class_names),
        confusion=confusion.tolist(),
        classes=[_scores(confusion, i, n) for i, n in enumerate(class_names)],
        mistakes=wrong[:MISTAKES_KEPT],
        misclassified=len(wrong),
    )
    if figure is None:
        return evaluation
    return replace(evaluation, figure=str(draw(evaluation, figure)))


def evaluate_split(
    splits: Splits,
    split: str,
    predictions: Iterable[tuple[np.ndarray, np.ndarray]],
    folder: Path | None = None,
) -> Evaluation:
    """Score a dataset split's predictions, naming examples by ``splits.files``; the
    figure goes to ``folder`` as :data:`FIGURE` when a folder is given."""
    files = splits.files.get(split)
    figure = folder / FIGURE if folder is not None else None
    return evaluate(split, predictions, splits.class_names, files, figure)


def _scores(confusion: np.ndarray, i: int, name: str) -> ClassScores:
    hits, predicted, support = confusion[i, i], confusion[:, i].sum(), confusion[i].sum()
    if not predicted and not support:
        return ClassScores(name, None, None, None, 0)
    precision = float(hits / predicted) if predicted else 0.0
    recall = float(hits / support) if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ClassScores(name, precision, recall, f1, int(support))


def _mistakes(
    labels: np.ndarray,
    predicted: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    files: Sequence[str] | None,
) -> list[Mistake]:
    """Every misclassified example, the most confident first (ties in data order)."""
    import numpy as np

    wrong = np.flatnonzero(labels != predicted)
    confidence = probs[wrong, predicted[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")]
    return [
        Mistake(
            index=int(i),
            file=files[i] if files is not None else None,
            true=class_names[labels[i]],
            predicted=class_names[predicted[i]],
            probability=float(probs[i, predicted[i]]),
            true_probability=float(probs[i, labels[i]]),
        )
        for i in order
    ]


def draw(evaluation: Evaluation, path: Path) -> Path:
    """The confusion matrix as a PNG: counts in each cell, shaded by the share of the
    true class (row), so a weak class shows however few examples it has."""
    import numpy as np
    from matplotlib.figure import Figure

    counts = np.asarray(evaluation.confusion)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = 2.5 + 0.55 * len(counts)
    # A bare Figure draws with the Agg canvas: no display, no pyplot state.
    figure = Figure(figsize=(side + 1.5, side), dpi=100, layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=ax, label="share of the true class")
    for (row, column), count in np.ndenumerate(counts):
        colour = "white" if shares[row, column] > 0.6 else "black"
        ax.text(column, row, str(count), ha="center", va="center", color=colour)
    ticks = range(len(counts))
    ax.set_xticks(ticks, evaluation.class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, evaluation.class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = evaluation.accuracy
    shown = f", accuracy {accuracy:.4f}" if accuracy is not None else ""
    ax.set_title(f"{evaluation.name}: {evaluation.examples} examples{shown}")
    return write_figure(figure, path, fix="pass another --output DIR")


def write_figure(figure: Figure, path: Path, *, fix: str) -> Path:
    """Write ``figure`` to ``path`` whole (:func:`zoo.storage.atomic.write_bytes`), as a
    PNG unless the path's suffix names another format; ``fix`` says how to write elsewhere."""
    drawn = io.BytesIO()
    figure.savefig(drawn, format=path.suffix[1:] or "png")
    with os_errors.explained(
        "write the figure", path, expected="a folder zoo can write a PNG to", fix=fix
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, drawn.getbuffer())
    return path
