"""Scoring predictions: the confusion matrix, per-class scores, the most confident mistakes.

The expected numbers are worked out by hand from the small examples here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.errors import ZooError
from zoo.model import scoring

CLASSES = ["cat", "dog", "fox"]
#: Six examples: two of each class. Softmax outputs, one row per example.
LABELS = np.array([0, 0, 1, 1, 2, 2])
OUTPUTS = np.array(
    [
        [0.8, 0.1, 0.1],  # cat, right
        [0.3, 0.6, 0.1],  # cat taken for a dog (0.6)
        [0.1, 0.7, 0.2],  # dog, right
        [0.05, 0.9, 0.05],  # dog, right
        [0.1, 0.1, 0.8],  # fox, right
        [0.1, 0.85, 0.05],  # fox taken for a dog (0.85)
    ]
)
FILES = [f"{i}.jpg" for i in range(6)]


def test_the_confusion_matrix_counts_true_against_predicted():
    evaluation = scoring.evaluate("test", [(OUTPUTS, LABELS)], CLASSES, FILES)

    assert evaluation.confusion == [[1, 1, 0], [0, 2, 0], [0, 1, 1]]
    assert evaluation.examples == 6 and evaluation.accuracy == pytest.approx(4 / 6)


def test_precision_recall_and_f1_per_class():
    evaluation = scoring.evaluate("test", [(OUTPUTS, LABELS)], CLASSES, FILES)
    cat, dog, fox = evaluation.classes

    assert (fox.precision, fox.recall) == (1.0, 0.5)
    # Predicted dog 4 times, right twice: precision 1/2; both dogs found: recall 1.
    assert (dog.precision, dog.recall, dog.support) == (0.5, 1.0, 2)
    assert dog.f1 == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert (cat.precision, cat.recall, cat.f1) == (1.0, 0.5, pytest.approx(2 / 3))
    assert evaluation.macro("recall") == pytest.approx((0.5 + 1 + 0.5) / 3)


def test_mistakes_are_listed_most_confident_first_with_their_files():
    evaluation = scoring.evaluate("test", [(OUTPUTS, LABELS)], CLASSES, FILES)

    assert evaluation.misclassified == 2
    first, second = evaluation.mistakes
    assert (first.file, first.true, first.predicted) == ("5.jpg", "fox", "dog")
    assert (first.probability, first.true_probability) == (0.85, 0.05)
    assert (second.file, second.index, second.probability) == ("1.jpg", 1, 0.6)


def test_without_files_mistakes_are_named_by_position():
    evaluation = scoring.evaluate(
        "test", [(OUTPUTS[:3], LABELS[:3]), (OUTPUTS[3:], LABELS[3:])], CLASSES
    )

    assert [(m.index, m.file) for m in evaluation.mistakes] == [(5, None), (1, None)]


def test_a_sigmoid_output_is_the_second_class_probability():
    outputs = np.array([[0.9], [0.2], [0.6]])  # dog, cat, dog

    evaluation = scoring.evaluate("test", [(outputs, np.array([1, 1, 0]))], ["cat", "dog"])

    assert evaluation.confusion == [[0, 1], [1, 1]]
    (most, least) = evaluation.mistakes
    assert (most.index, most.probability) == (1, pytest.approx(0.8))
    assert (least.index, least.true_probability) == (2, pytest.approx(0.4))


def test_a_class_never_predicted_has_precision_zero_and_one_never_seen_no_scores():
    outputs = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0]])

    evaluation = scoring.evaluate("test", [(outputs, np.array([0, 1]))], CLASSES)
    cat, dog, fox = evaluation.classes

    assert (cat.precision, cat.recall) == (0.5, 1.0)
    assert (dog.precision, dog.recall, dog.f1) == (0.0, 0.0, 0.0)
    assert (fox.precision, fox.recall, fox.f1, fox.support) == (None, None, None, 0)
    assert evaluation.macro("precision") == pytest.approx(0.25)  # cat 0.5, dog 0; fox left out


def test_outputs_that_do_not_fit_the_classes_are_a_clear_error():
    with pytest.raises(ZooError, match="3 classes"):
        scoring.evaluate("test", [(np.zeros((2, 5)), np.array([0, 1]))], CLASSES)


def test_the_report_as_data_and_as_a_figure(isolated: Path):
    evaluation = scoring.evaluate(
        "test", [(OUTPUTS, LABELS)], CLASSES, FILES, figure=isolated / "out" / "cm.png"
    )

    data = evaluation.to_dict()
    assert data["confusion_matrix"] == evaluation.confusion and data["misclassified"] == 2
    assert data["classes"][1] == {
        "name": "dog", "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 2
    }  # fmt: skip
    assert data["mistakes"][0]["file"] == "5.jpg" and data["figure"] == str(
        isolated / "out" / "cm.png"
    )
    with Image.open(isolated / "out" / "cm.png") as image:
        assert image.format == "PNG" and image.size[0] > 300
        assert len(image.convert("RGB").getcolors(1 << 16) or []) > 20  # drawn, not blank


def test_files_written_whole_get_the_mode_a_plain_open_gives(tmp_path):
    """Written under a temporary name, with 0666 less the umask, as a figure saved in
    place had and model.keras has: a run shared with a group stays so."""
    import os

    from zoo.storage.atomic import write_bytes

    umask = os.umask(0o027)
    os.umask(umask)
    path = tmp_path / "figure.png"

    write_bytes(path, b"png")

    assert path.read_bytes() == b"png"
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
