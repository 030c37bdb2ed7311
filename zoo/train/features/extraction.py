"""The features a frozen backbone's head trains on: their keys, their runtime, extracting them.

Each split's features come from the cache (:mod:`zoo.train.features.cache`) under a key that
names everything they depend on, or are extracted on a miss. When the head begins with
global pooling (``BuiltHead.pooled``), the pooled vector is what is computed and
cached, not the backbone's whole map. The runtime that computes them
(:mod:`zoo.runtime.runners`: TensorFlow, or OpenVINO on the CPU) is decided once, before the
first split: a model is converted to OpenVINO only when some split must be extracted
(and, for ``auto``, when they hold images enough to repay converting), and one that does
not convert is run by TensorFlow, saying why. The runtime and its
precision are part of the key, so a run never trains on features another runtime
computed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.data import pipeline
from zoo.runtime import runners
from zoo.train.events import RunWarning
from zoo.train.features import cache as feature_cache
from zoo.train.features import store
from zoo.train.loop import predict_batches

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from zoo.data.pipeline import Augmentation
    from zoo.train.state import Run


@dataclass(frozen=True)
class _Split:
    """One split's features as asked for: with ``views`` augmented copies of each image."""

    split: str
    shown: str
    views: int | None = None
    augment: Callable[[tf.data.Dataset], tf.data.Dataset] | None = None


class _ConversionFailed(Exception):
    """The model did not convert while extracting under a key that named OpenVINO."""

    def __init__(self, choice: runners.RuntimeChoice) -> None:
        super().__init__(choice.reason)
        self.choice = choice


class FeatureSource:
    """Each split's features for a run whose head trains on cached features."""

    def __init__(self, run: Run, augmentation: Augmentation | None) -> None:
        self.run = run
        self.augmentation = augmentation
        self.pooled = run.assembled.pooled
        self.cache: feature_cache.FeatureCache | None = None
        self.choice: runners.RuntimeChoice | None = None
        self.runner: runners.Runner | None = None
        self._base: dict[str, Any] | None = None
        self._told_over = False

    @property
    def model(self) -> keras.Model:
        """What computes the features: preprocessing, backbone, and the head's pooling."""
        pooled = self.pooled
        return pooled.features if pooled is not None else self.run.assembled.features

    @property
    def head(self) -> keras.Model:
        """What trains on the features: the head, or its part after the pooling."""
        pooled = self.pooled
        return pooled.head if pooled is not None else self.run.assembled.head

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    def settle(self, splits: Sequence[str]) -> None:
        """Decide the runtime before any of ``splits`` is read; convert only when some
        must be extracted (``auto``: enough images to repay it, or OpenVINO's features
        of the others cached). Tells the callbacks once."""
        if self.choice is not None:
            return
        run = self.run
        gpu = any("GPU" in device.upper() for device in run.placement.devices)
        config = run.config
        self.choice = runners.plan(config.runtime, config.runtime_precision, gpu=gpu)
        missing = [
            self._split(s) for s in splits if not self._cache().has(self._key(self._split(s)))
        ]
        # Too few images to repay converting: TensorFlow, unless OpenVINO's features of
        # some split are cached already (the runtime is in the key: switching would
        # extract those again, as a trial's run and then the winner's test split did).
        if self.choice.name == "openvino" and missing and len(missing) == len(splits):
            counts = [self._images(asked) for asked in missing]
            count = None if None in counts else sum(n for n in counts if n is not None)
            self.choice = runners.plan(
                config.runtime, config.runtime_precision, gpu=gpu, images=count
            )
            if self.choice.name == "openvino":
                self.runner, self.choice = self._compile(self.choice)
        run.events.on_runtime(self.choice)

    def _images(self, asked: _Split) -> int | None:
        """How many images extracting ``asked`` runs the model on (copies counted), if
        the dataset says."""
        size = self.run.splits.sizes.get(asked.split)
        return None if size is None else size * (asked.views or 1)

    def get(self, split: str) -> feature_cache.Features:
        """``split``'s features from the cache, extracted on a miss; with augmentation,
        the training split's are those of ``--augment-views`` augmented copies."""
        self.settle((split,))
        asked = self._split(split)
        try:
            found, pruned = self._get(asked)
        except _ConversionFailed as failed:  # a miss settle did not foresee (pruned, damaged)
            self.choice = failed.choice
            self.run.events.on_runtime(failed.choice)
            found, pruned = self._get(asked)
        events = self.run.events
        if pruned is not None and (pruned.removed or (pruned.over and not self._told_over)):
            self._told_over = self._told_over or pruned.over  # said once a run
            events.on_cache_pruned(pruned)
        events.on_features(split, self._key(asked), found.source, len(found))
        return found

    def _get(self, asked: _Split) -> tuple[feature_cache.Features, store.Pruned | None]:
        extract = functools.partial(self._extract, asked)
        return self._cache().get(self._key(asked), extract, self._about(asked))

    def _compile(
        self, choice: runners.RuntimeChoice
    ) -> tuple[runners.Runner | None, runners.RuntimeChoice]:
        what = f"the backbone {self.run.config.backbone.name}"
        return runners.compile_model(self.model, choice, what)

    def _cache(self) -> feature_cache.FeatureCache:
        if self.cache is None:
            run, options = self.run, self.run.options
            directory = options.cache_dir or feature_cache.default_directory()
            # Only the chief keeps features; the other workers' go when the run ends.
            persistent = directory if run.placement.is_chief else None
            self.cache = feature_cache.FeatureCache(
                persistent, options.cache_memory, options.cache_max, self._damaged
            )
        return self.cache

    def _damaged(self, folder: Path, problem: str) -> None:
        """Say, in one line, that a damaged entry was removed and is extracted again."""
        message = f"cached features {folder} were damaged ({problem}): removed, extracted again."
        fix = "nothing to do; if it recurs, check the disk that holds the cache"
        self.run.events.on_warning(RunWarning("damaged_cache", message, fix))

    def _split(self, split: str) -> _Split:
        if split != "train" or self.augmentation is None:
            return _Split(split, split)
        views = self.run.config.augment_views
        augment = functools.partial(self.augmentation.copies, count=views)
        return _Split(split, f"train ({views} augmented copies of each image)", views, augment)

    def _extract(self, asked: _Split, folder: Path) -> Mapping[str, Any]:
        run = self.run
        choice = self.choice
        assert choice is not None, "the runtime is settled before any extraction"
        if choice.name == "openvino" and self.runner is None:
            self.runner, converted = self._compile(choice)
            if converted != choice:  # the key named OpenVINO, which cannot compute them
                raise _ConversionFailed(converted)
        size = run.config.batch_size
        events = run.events
        events.on_extract_begin(
            asked.shown, pipeline.steps(run.splits.sizes.get(asked.split), size)
        )
        images = pipeline.batches(
            getattr(run.splits, asked.split),
            image_size=run.config.image_size,
            batch_size=size,
            size=run.splits.sizes.get(asked.split),
            augment=asked.augment,
        )
        if self.runner is None:
            predicted = predict_batches(self.model, run.placement, images)
        else:
            predicted = runners.run_batches(self.runner, images)
        total = run.splits.sizes.get(asked.split)
        meta = feature_cache.extract_to(
            folder, predicted, events.on_extract_step, asked.views, total
        )
        events.on_extract_end(asked.shown)
        return meta

    def _key(self, asked: _Split) -> str:
        identity = self._identity()
        if asked.views is not None and self.augmentation is not None:
            identity.update(augmentation=self.augmentation.to_json(), views=asked.views)
        return feature_cache.cache_key(identity, asked.split)

    def _base_identity(self) -> dict[str, Any]:
        """Everything the features depend on but the split and the runtime: any change
        is another key."""
        if self._base is None:
            self._base = self._make_identity()
        return self._base

    def _make_identity(self) -> dict[str, Any]:
        run = self.run
        config, splits = run.config, run.splits
        preprocessing = run.assembled.preprocessing
        identity = {
            "dataset": {
                "name": config.dataset.qualified_name,
                "params": dict(config.dataset.params),
                "version": splits.version,
                "fingerprint": splits.fingerprint,
                "sizes": dict(splits.sizes),
            },
            "backbone": {
                "name": config.backbone.qualified_name,
                "params": dict(config.backbone.params),
                "weights": run.backbone_digest(),
            },
            "image_size": config.image_size,
            "preprocessing": _layer_identity(preprocessing),
            "precision": run.precision,
        }
        if self.pooled is not None:
            identity["pooled"] = [_layer_identity(layer) for layer in self.pooled.pooling.layers]
        return identity

    def _identity(self) -> dict[str, Any]:
        assert self.choice is not None, "the runtime is settled before any key is made"
        return {**self._base_identity(), **self.choice.identity()}

    def _about(self, asked: _Split) -> dict[str, Any]:
        """What ``zoo cache list`` shows of an entry: where its images and weights came
        from (the components' parameters: a folder, a preset, a weights file) and how
        its training images were augmented."""
        config, choice = self.run.config, self.choice
        augmentation = self.augmentation if asked.views is not None else None
        return {
            "dataset": config.dataset.name,
            "backbone": config.backbone.name,
            "split": asked.split,
            "image_size": config.image_size,
            "pooled": self.pooled is not None,
            "runtime": choice.name if choice else None,
            "precision": choice.precision if choice else None,
            "dataset_params": dict(config.dataset.params),
            "backbone_params": dict(config.backbone.params),
            "views": asked.views if augmentation else None,
            "augmentation": augmentation.to_json() if augmentation else None,
        }


def _layer_identity(layer: Any) -> list[Any]:
    """A layer's class and configuration without its name (names vary per process)."""
    return [type(layer).__name__, {k: v for k, v in layer.get_config().items() if k != "name"}]
