"""Every pass zoo makes over a tf.data pipeline runs with tf.data's autotuning off.

With it on, destroying an iterator at a pass's end waits for the autotuning thread, and
the wake-up that should end that thread's sleep is sometimes missed: the pass ends
seconds later, idle (zoo.runtime.loader.without_autotuning). The stall is a race, so no test can
make it happen on demand; these tests make sure no pipeline zoo iterates can meet it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import colour_folder

from zoo.data import pipeline

RUN = [
    "run", "image_folder", "small_cnn", "gap_sigmoid",
    "--epochs", "2", "--image-size", "24", "--batch-size", "8", "--json",
]  # fmt: skip


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether autotuning was on, for every pass over a tf.data dataset from now on."""
    import tensorflow as tf

    seen: list[bool] = []
    iterate, numpy_iterate = tf.data.Dataset.__iter__, tf.data.Dataset.as_numpy_iterator

    def recorded(method):
        def wrapper(self, *args, **kwargs):
            seen.append(self.options().autotune.enabled is not False)
            return method(self, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(tf.data.Dataset, "__iter__", recorded(iterate))
    monkeypatch.setattr(tf.data.Dataset, "as_numpy_iterator", recorded(numpy_iterate))
    return seen


def test_without_autotuning_turns_it_off_and_keeps_the_elements():
    import tensorflow as tf

    dataset = tf.data.Dataset.range(10).map(lambda x: x * 2, num_parallel_calls=tf.data.AUTOTUNE)

    untuned = pipeline.without_autotuning(dataset.prefetch(tf.data.AUTOTUNE))

    assert dataset.options().autotune.enabled is not False  # tf.data's default: on
    assert untuned.options().autotune.enabled is False
    assert list(untuned.as_numpy_iterator()) == [2 * x for x in range(10)]


def test_a_run_its_evaluation_and_predictions_iterate_nothing_with_autotuning(
    zoo_cli, isolated: Path, passes: list[bool]
):
    photos = colour_folder(isolated / "photos", {"red": 20, "blue": 20})
    for trainable in ("false", "true"):  # features extracted then cached; images each epoch
        trained = zoo_cli(*RUN, "--set", f"dataset.path={photos}", "--runtime", "tensorflow",
                          "--set", f"backbone.trainable={trainable}")  # fmt: skip
        assert trained.exit_code == 0, trained.stderr
    run_dir = trained.json()["run_dir"]
    evaluated = zoo_cli("evaluate", run_dir, "--output", "evaluated")
    predicted = zoo_cli("predict", run_dir, str(photos / "red"), "--json")

    assert evaluated.exit_code == 0, evaluated.stderr
    assert predicted.exit_code == 0, predicted.stderr
    assert len(passes) > 10  # checked, extracted, trained, validated, evaluated, predicted
    assert not any(passes)


def test_a_mirrored_run_reads_its_per_device_datasets_without_autotuning(
    zoo_cli, isolated: Path, passes: list[bool]
):
    photos = colour_folder(isolated / "photos", {"red": 20, "blue": 20})

    trained = zoo_cli(*RUN, "--set", f"dataset.path={photos}", "--strategy", "mirrored")

    assert trained.exit_code == 0, trained.stderr
    assert "MirroredStrategy" in trained.stderr
    assert passes  # the strategy's own per-device datasets among them
    assert not any(passes)
