"""The tutorial's transfer-learning experiment, written the plain Keras way.

This is the peer zoo is measured against: ``image_dataset_from_directory`` over the
folder's ``train/``, ``validation/`` and ``test/`` folders (the very images zoo's
``image_folder`` reads, so accuracies compare point for point), a frozen ``ResNet50``
with ``GlobalAveragePooling2D`` and ``Dense(1, sigmoid)`` on top,
``resnet50.preprocess_input``, Adam, binary cross-entropy, ``model.fit`` and
``model.evaluate``. It is a standalone script; the benchmark runs it in its own
process::

    python bench/plain_keras.py DATA_DIR --epochs 7 --image-size 100 --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def epoch_timer() -> Any:
    """A Keras callback that keeps each epoch's wall time (validation included) in
    ``seconds``: the epochs show whether the run paused somewhere."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self.started = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self.started)

    return EpochTimer()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--image-size", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    started = time.perf_counter()

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    size = (args.image_size, args.image_size)

    def load(split: str, shuffle: bool) -> tf.data.Dataset:
        return keras.utils.image_dataset_from_directory(
            args.data_dir / split,
            seed=args.seed,
            shuffle=shuffle,
            image_size=size,
            batch_size=args.batch_size,
        )

    train_ds = load("train", shuffle=True)
    val_ds = load("validation", shuffle=False)
    test_ds = load("test", shuffle=False)
    train_ds = train_ds.prefetch(tf.data.AUTOTUNE)
    val_ds = val_ds.prefetch(tf.data.AUTOTUNE)
    test_ds = test_ds.prefetch(tf.data.AUTOTUNE)

    base_model = keras.applications.ResNet50(
        weights=None, include_top=False, input_shape=(*size, 3)
    )
    base_model.trainable = False
    inputs = keras.Input(shape=(*size, 3))
    x = keras.applications.resnet50.preprocess_input(inputs)
    x = base_model(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=["accuracy"],
    )
    model.summary()
    epochs = epoch_timer()
    fit_started = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, callbacks=[epochs])
    evaluate_started = time.perf_counter()
    _, test_accuracy = model.evaluate(test_ds)
    finished = time.perf_counter()

    results = {
        "val_accuracy": history.history["val_accuracy"][-1],
        "test_accuracy": test_accuracy,
        "timings": {
            "setup": round(fit_started - started, 3),
            "fit": round(evaluate_started - fit_started, 3),
            "evaluate": round(finished - evaluate_started, 3),
        },
        "epoch_seconds": [round(t, 3) for t in epochs.seconds],
    }
    print(json.dumps(results))
    if args.json:
        args.json.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
