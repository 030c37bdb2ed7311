"""A run's stages as plans the trainer runs: what trains, on which data, with which optimizer.

``head`` trains the head. When the backbone is frozen and the feature cache is on, it
trains the head model alone on the backbone's features (pooled, when the head begins
with global pooling), extracted once per split and cached (:mod:`zoo.train.features.extraction`);
otherwise the whole model on images. ``fine_tune``
unfreezes the top of the backbone and trains the whole model on images at its own
learning rate. A resumed run restores its checkpoint into the first stage that runs,
before any features are extracted.

Each stage's optimizer follows the run's learning-rate schedule over that stage's steps
(:mod:`zoo.train.schedules`), decays weights as ``--weight-decay`` says and, with
``--ema``, keeps their moving average; its loss weighs classes as ``--class-weight``
says and smooths labels as ``--label-smoothing`` says.

With ``--augment``, training images are changed at random in the input pipeline
(:class:`zoo.data.pipeline.Augmentation`), differently every epoch. A frozen backbone's features
cannot follow every random change, so they are extracted for ``--augment-views`` K
augmented copies of each training image, in one pass (so each copy stays with its image
whatever order the dataset gives), and cached under a key that adds the augmentation's
settings and K; every epoch draws one of the K for each image. The validation and test
splits are never augmented.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zoo.data import pipeline
from zoo.model.assemble import make_optimizer, parameter_counts
from zoo.train import schedules
from zoo.train.events import StagePlan
from zoo.train.features.extraction import FeatureSource
from zoo.train.finetune import unfreeze_top

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from zoo.storage.runs import Stage
    from zoo.train.state import Run


Batches = tuple[Callable[[int], Any], Callable[[], Any]]


class Stages:
    """Plans the stages of one run and what its test is evaluated on."""

    def __init__(self, run: Run) -> None:
        self.run = run
        cached = run.config.feature_cache and run.assembled.backbone_frozen
        self.augmentation = pipeline.Augmentation.of(run.config)
        #: Where the head's features come from, when it trains on cached features (and,
        #: without fine-tuning, is tested on them).
        self.features = FeatureSource(run, self.augmentation) if cached else None
        self.train_labels: Any = None
        self.weights: tuple[float, ...] | None = None

    def plan(self, stage: Stage) -> tuple[StagePlan, int] | None:
        """``stage``'s plan and how many of its epochs a resumed run has done; ``None``
        when it has none to run: the head's ended before a resume, or no fine-tuning
        was asked for."""
        if stage == "head":
            return None if self.run.resume.skips_head else self.head()
        return self.fine_tune() if self.run.config.fine_tune_epochs else None

    def head(self) -> tuple[StagePlan, int]:
        """The head stage, and how many of its epochs a resumed run has done."""
        config, assembled = self.run.config, self.run.assembled
        model = self.features.head if self.features is not None else assembled.model
        optimizer, schedule = self._optimizer(model, config.learning_rate, config.epochs)
        start = self.run.resume.restore("head", optimizer)
        train, validation = (
            self._cached_batches() if self.features is not None else self._image_batches()
        )
        frozen = assembled.backbone_frozen
        plan = StagePlan(
            stage="head",
            model=model,
            optimizer=optimizer,
            epochs=config.epochs,
            learning_rate=config.learning_rate,
            train_batches=train,
            val_batches=validation,
            steps=self._steps(),
            # Only the head changes: a frozen ResNet50 would add ~95 MB every epoch. The
            # backbone is rebuilt from the configuration on resume, checked by its digest.
            checkpointed=assembled.head if frozen else assembled.model,
            backbone_sha256=self.run.backbone_digest() if frozen else None,
            schedule=schedule,
            class_weights=self._class_weights(),
            training_loss=self.run.assembled.training_loss,
        )
        return plan, start

    def fine_tune(self) -> tuple[StagePlan, int]:
        """The fine-tuning stage (the top of the backbone unfrozen), and its epochs done."""
        run = self.run
        config, assembled = run.config, run.assembled
        with run.placement.strategy.scope():
            unfrozen = unfreeze_top(
                assembled.backbone, config.fine_tune_layers, config.backbone.name
            )
        run.events.on_fine_tune_unfrozen(unfrozen, parameter_counts(assembled.model))
        optimizer, schedule = self._optimizer(
            assembled.model, config.fine_tune_lr, config.fine_tune_epochs
        )
        start = self.run.resume.restore("fine_tune", optimizer)
        train, validation = self._image_batches()
        plan = StagePlan(
            stage="fine_tune",
            model=assembled.model,
            optimizer=optimizer,
            epochs=config.fine_tune_epochs,
            learning_rate=config.fine_tune_lr,
            train_batches=train,
            val_batches=validation,
            steps=self._steps(),
            checkpointed=assembled.model,
            schedule=schedule,
            class_weights=self._class_weights(),
            training_loss=self.run.assembled.training_loss,
        )
        return plan, start

    def test(self) -> tuple[keras.Model, tf.data.Dataset]:
        """The trained model and the test split it is evaluated on: features of the test
        images for a head trained on features, else the images."""
        run, features = self.run, self.features
        if features is not None and not run.config.fine_tune_epochs:
            with run.timer.phase("extract"):
                test = features.get("test")
            return features.head, test.batches(run.config.batch_size)
        return run.assembled.model, self._images("test")

    def close(self) -> None:
        if self.features is not None:
            self.features.close()

    def _optimizer(self, model: keras.Model, learning_rate: float, epochs: int) -> tuple[Any, Any]:
        """The stage's optimizer, built on ``model``, and its schedule (``None``: constant)."""
        run, config = self.run, self.run.config
        shape = schedules.shape_of(config, epochs, self._steps())
        ema = config.ema_momentum if config.ema else None
        with run.placement.strategy.scope():
            schedule = schedules.schedule(learning_rate, shape) if shape else None
            rate = learning_rate if schedule is None else schedule
            optimizer = make_optimizer(
                config.optimizer,
                rate,
                run.precision,
                weight_decay=config.weight_decay,
                ema_momentum=ema,
            )
            optimizer.build(model.trainable_variables)
        return optimizer, schedule

    def _class_weights(self) -> tuple[float, ...] | None:
        """``balanced`` weights from the training labels, or ``None``. The labels are
        counted once: those of the cached features when the head trains on them, else
        by one pass over the training split (which reads its images once)."""
        run = self.run
        if run.config.class_weight == "none":
            return None
        if self.weights is None:
            if self.train_labels is None:
                self.train_labels = pipeline.labels_of(run.splits.train)
            self.weights = pipeline.balanced_weights(self.train_labels, run.splits.num_classes)
        return self.weights

    def _steps(self) -> int | None:
        return pipeline.steps(self.run.splits.sizes.get("train"), self.run.config.batch_size)

    def _shuffle_seed(self, epoch: int) -> int:
        """The shuffle seed of ``epoch``: a resumed run shuffles exactly as an unbroken one
        (given a training split in the same order on every pass: docs/plugins.md)."""
        return self.run.config.seed * 100_003 + epoch

    def _images(
        self,
        split: str,
        seed: int | None = None,
        augment: Callable[[tf.data.Dataset], tf.data.Dataset] | None = None,
    ) -> tf.data.Dataset:
        """``split``'s images resized and batched; shuffled from ``seed`` when given, and
        changed by ``augment`` when given (the training split only)."""
        run = self.run
        return pipeline.batches(
            getattr(run.splits, split),
            image_size=run.config.image_size,
            batch_size=run.config.batch_size,
            shuffle=seed is not None,
            seed=seed or 0,
            size=run.splits.sizes.get(split),
            augment=augment,
        )

    def _image_batches(self) -> Batches:
        augmentation = self.augmentation

        def train(epoch: int) -> tf.data.Dataset:
            seed = self._shuffle_seed(epoch)
            if augmentation is None:
                return self._images("train", seed)
            return self._images("train", seed, functools.partial(augmentation.apply, seed=seed))

        return train, lambda: self._images("validation")

    def _cached_batches(self) -> Batches:
        features = self.features
        assert features is not None, "only a head trained on cached features reads them"
        with self.run.timer.phase("extract"):
            # The test split too, when it is tested on features: one runtime for all.
            on_features = self.run.options.test and not self.run.config.fine_tune_epochs
            tested = ["test"] if on_features else []
            features.settle(["train", "validation", *tested])
            train, validation = features.get("train"), features.get("validation")
        if self.train_labels is None:
            self.train_labels = train.labels
        size = self.run.config.batch_size
        return (
            lambda epoch: train.batches(size, self._shuffle_seed(epoch)),
            lambda: validation.batches(size),
        )
