"""The training loop on its own: tiny Keras models, in this process, in seconds."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import batched, learnable, one_device, tiny_classifier

from zoo.train.loop import Loop


def adam(model, learning_rate: float = 0.05):
    import keras

    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(model.trainable_variables)
    return optimizer


def test_training_epochs_lower_the_loss_of_a_learnable_problem():
    model = tiny_classifier()
    loop = Loop(model, "binary_crossentropy", ["accuracy"], one_device(), adam(model))
    x, y = learnable()

    losses = [loop.train_epoch(batched(x, y))["loss"] for _ in range(8)]
    after = loop.evaluate(batched(x, y))

    assert losses[-1] < losses[0]
    assert after["accuracy"] > 0.8


def test_the_loss_is_the_mean_over_every_example_even_with_a_short_last_batch():
    import keras

    model = tiny_classifier(units=3)
    x, _ = learnable(count=13)
    y = np.arange(13) % 3
    expected = keras.losses.sparse_categorical_crossentropy(y, model(x)).numpy().mean()

    logs = Loop(model, "sparse_categorical_crossentropy", [], one_device()).evaluate(
        batched(x, y, size=5)
    )

    assert logs["loss"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("units", "metric"), [(1, "BinaryAccuracy"), (3, "SparseCategorical")])
def test_accuracy_means_what_keras_compile_makes_of_it(units: int, metric: str):
    model = tiny_classifier(units=units)

    loop = Loop(model, "sparse_categorical_crossentropy", ["accuracy"], one_device())

    assert type(loop.metrics[0]).__name__.startswith(metric)
    assert loop.metrics[0].name == "accuracy"


def test_progress_is_reported_after_the_last_batch_with_the_epochs_metrics():
    model = tiny_classifier()
    loop = Loop(model, "binary_crossentropy", ["accuracy"], one_device(), adam(model))
    reports = []
    x, y = learnable(count=20)

    logs = loop.train_epoch(batched(x, y, size=8), lambda step, so_far: reports.append(step))

    assert reports[-1] == 2  # three batches: 8, 8 and 4 examples
    assert set(logs) == {"loss", "accuracy"}


def test_a_nan_loss_is_reported_not_judged():
    model = tiny_classifier()
    loop = Loop(model, "binary_crossentropy", [], one_device(), adam(model))
    x, y = learnable(count=8)
    x[0, 0] = np.nan

    logs = loop.train_epoch(batched(x, y))

    assert np.isnan(logs["loss"])  # stopping is the callbacks' call (TerminateOnNaN)


def test_a_loop_without_an_optimizer_only_evaluates():
    loop = Loop(tiny_classifier(), "binary_crossentropy", [], one_device())

    with pytest.raises(ValueError, match="no optimizer"):
        loop.train_epoch(batched(*learnable()))
