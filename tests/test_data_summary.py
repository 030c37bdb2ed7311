"""The data summary: counts per split and class, and the warnings that come with them."""

from __future__ import annotations

from pathlib import Path

from helpers import write

from zoo import Splits
from zoo.data.summary import summarize


def splits(**fields) -> Splits:
    """Splits with no data behind them: the summary reads only the declared facts."""
    return Splits(train=None, validation=None, test=None, **fields)


def test_counts_per_class_are_recorded_by_name():
    summary = summarize(
        splits(
            class_names=["cat", "dog"],
            sizes={"train": 400, "validation": 100, "test": 100},
            class_counts={"train": [200, 200], "validation": [50, 50], "test": [50, 50]},
            unreadable={"Cat/666.jpg": "the file is empty (0 bytes)"},
            skipped=1,
        )
    )

    data = summary.to_dict()
    assert data["class_counts"]["train"] == {"cat": 200, "dog": 200}
    assert data["unreadable"] == [{"file": "Cat/666.jpg", "reason": "the file is empty (0 bytes)"}]
    assert summary.warnings == [] and summary.points_per_example("test") == 1.0


def test_a_class_four_times_smaller_is_a_warning_naming_it():
    summary = summarize(
        splits(
            class_names=["cat", "dog", "fox"],
            sizes={"train": 104, "validation": 130, "test": 130},
            class_counts={"train": [50, 4, 50]},
        )
    )

    (warning,) = summary.warnings
    assert "'dog' (4) against 'cat' (50)" in warning and "12 times fewer" in warning


def test_a_class_just_under_four_times_smaller_is_not():
    counts = {"train": [50, 13]}
    summary = summarize(splits(class_names=["a", "b"], sizes={"train": 63}, class_counts=counts))

    assert summary.warnings == []


def test_small_evaluation_splits_say_what_one_example_is_worth():
    summary = summarize(
        splits(class_names=["a", "b"], sizes={"train": 1000, "validation": 40, "test": 100})
    )

    (warning,) = summary.warnings
    assert warning.startswith("the validation split has only 40 examples: each is 2.5 points")


def test_a_class_missing_from_the_test_split_is_a_warning():
    summary = summarize(
        splits(
            class_names=["a", "b", "c"],
            sizes={"train": 300, "validation": 300, "test": 200},
            class_counts={"train": [100] * 3, "validation": [100] * 3, "test": [100, 100, 0]},
        )
    )

    assert summary.warnings == ["the test split has no examples of 'c': how well the model "
                                "finds them cannot be measured there"]  # fmt: skip


def test_without_class_counts_the_summary_still_has_sizes_and_skipped_count():
    summary = summarize(splits(class_names=["a", "b"], sizes={"train": 800}, skipped=3))

    assert summary.class_counts == {} and summary.skipped == 3 and summary.unreadable == {}


DISAGREEING_PLUGIN = """
import zoo

def build(params):
    import tensorflow as tf
    pairs = tf.data.Dataset.from_tensor_slices((tf.zeros((4, 8, 8, 3), tf.uint8), [0, 1, 0, 1]))
    return zoo.Splits(
        train=pairs, validation=pairs, test=pairs, class_names=["a", "b"],
        sizes={"train": 4, "validation": 4, "test": 4},
        files={"test": ["only.jpg"]}, class_counts={"train": [3, 3]},
    )

@zoo.hookimpl
def register_datasets(register):
    register(zoo.Dataset(name="disagreeing", description="lists that do not fit", build=build))
"""


def test_files_and_counts_that_disagree_with_the_sizes_are_the_plugins_fault(
    zoo_cli, isolated: Path
):
    write(isolated / "disagreeing.py", DISAGREEING_PLUGIN)
    write(isolated / "registry.toml", '[plugins]\nload = ["disagreeing.py"]\n')

    result = zoo_cli("run", "disagreeing", "small_cnn", "gap_sigmoid", "--dry-run")

    assert result.exit_code == 1, result.stderr
    message = " ".join(result.stderr.split())
    assert "files['test'] names 1 examples, sizes['test'] is 4" in message
    assert "class_counts['train'] is [3, 3], for 2 classes and 4 examples" in message


def test_a_small_evaluation_split_is_named_with_how_to_hold_out_more():
    from zoo.data.summary import small_splits

    [warning] = small_splits({"train": 320, "validation": 40, "test": 400})

    assert warning.startswith("the validation split has only 40 examples: each is 2.5 points")
    assert "--set dataset.validation_fraction=0.2" in warning
