"""A training run's state, held once (:class:`Run`), what it is asked with and what it gives.

:func:`zoo.train.protocol.run_protocol` fills a :class:`Run` step by step; each attribute
names the step that sets it. The steps, the stages (:mod:`zoo.train.stages`) and the
feature source (:mod:`zoo.train.features.extraction`) read the run's parts from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.train.events import Callback, Events
from zoo.train.features import cache as feature_cache
from zoo.train.features import store
from zoo.train.monitor import Monitor
from zoo.train.record import Timer

if TYPE_CHECKING:
    from zoo.components import Splits
    from zoo.model.assemble import Assembled
    from zoo.runconfig import Resolved, RunConfig
    from zoo.train.callbacks import RunRecord
    from zoo.train.distribute import Placement
    from zoo.train.durability.best import KeepBest
    from zoo.train.durability.checkpoints import Checkpoint, Resume
    from zoo.train.durability.resume import Reopened
    from zoo.train.observers import Isolated
    from zoo.train.trainer import Trainer


@dataclass(frozen=True)
class EngineOptions:
    """How to run, as opposed to what (which is the ``RunConfig``).

    Args:
        strategy: ``auto``, ``default``, ``mirrored`` or ``multiworker``.
        precision: ``auto``, ``float32``, ``mixed_float16`` or ``mixed_bfloat16``.
        cache_dir: Where cached features persist (default: ``~/.cache/zoo/features``).
        cache_memory: Bytes of features kept in memory; the rest is read from disk.
        cache_max: Bytes the cache folder may hold: least recently used entries not in
            use are removed beyond it (``None``: no limit).
        test: Evaluate the test split at the end (``zoo run --no-test`` skips it, and
            ``zoo tune``'s trials do: the test split must not choose).
        write_model: Save model.keras at the end (``zoo tune``'s trials keep their
            metrics and best epoch's weights; only the winner writes a model).
        checkpoint: Checkpoint every epoch, so the run resumes (a trial that is
            killed is run again instead).
    """

    strategy: str = "auto"
    precision: str = "auto"
    cache_dir: Path | None = None
    cache_memory: int = feature_cache.DEFAULT_MEMORY_BUDGET
    cache_max: int | None = store.DEFAULT_MAX_SIZE
    test: bool = True
    write_model: bool = True
    checkpoint: bool = True


@dataclass
class RunResult:
    """What a run produced. ``run_dir`` is ``None`` for a dry run and on non-chief workers."""

    run_dir: Path | None
    parameters: dict[str, int]
    metrics: dict[str, Any] = field(default_factory=dict)


class Run:
    """One training run: what was asked for, and each part set up for it, held once.

    Args:
        resolved: The run's configuration and components.
        options: How to run it.
        reopened: The run directory a resume continues, checked and locked before
            TensorFlow loaded (:mod:`zoo.train.durability.resume`); ``None``: a new run.
        output: Where a new run directory goes.
        command: The command line metrics.json records.
        dry_run: Stop once the model is built.
        find_lr: Run the learning-rate range test instead of training
            (:func:`zoo.train.protocol.find_lr`).
        callbacks: More callbacks to tell what happens (after zoo's own).
        reporter: What shows the run (last: it shows what the others have saved).
    """

    #: Where it trains and at which precision: :func:`~zoo.train.protocol.set_up`.
    placement: Placement
    precision: str
    #: The model and its parameter counts: :func:`~zoo.train.protocol.build_model`.
    assembled: Assembled
    counts: dict[str, int]
    #: The run directory, new or reopened (``None`` on a worker other than the chief,
    #: unless it resumes: it reads it), and ``writable``, the same on the chief only:
    #: :func:`~zoo.train.protocol.open_run`.
    run_dir: Path | None
    writable: Path | None
    #: The observers the run names (``--track``), on the chief and not in a dry run:
    #: :func:`~zoo.train.protocol.set_up`.
    observers: list[Isolated]
    #: The callbacks that keep the run directory, the trainer that tells them, and the
    #: checkpoint it resumes from: :func:`~zoo.train.protocol.attach`.
    record: RunRecord
    keep_best: KeepBest | None
    trainer: Trainer
    resume: Resume
    #: The test split's metrics (:func:`~zoo.train.protocol.test`) and the digest of the
    #: weights saved (:func:`~zoo.train.protocol.save`); ``None`` when not asked for
    #: (:class:`EngineOptions`).
    test_metrics: dict[str, float] | None = None
    weights_sha256: str | None = None

    def __init__(
        self,
        resolved: Resolved,
        options: EngineOptions,
        reopened: Reopened | None,
        *,
        output: Path,
        command: Sequence[str],
        dry_run: bool,
        find_lr: bool = False,
        callbacks: Sequence[Callback],
        reporter: Callback,
    ) -> None:
        self.resolved = resolved
        self.options = options
        self.reopened = reopened
        self.output = output
        self.command = list(command)
        self.dry_run = dry_run
        self.find_lr = find_lr
        self.callbacks = tuple(callbacks)
        self.reporter = reporter
        #: Who hears what happens: the reporter alone while setting up (a dry run too),
        #: then zoo's callbacks, ``callbacks`` and the reporter (:func:`attach`).
        self.events = Events([reporter])
        self.timer = Timer()
        #: What "better" means for the best epoch, early stopping and the plateau.
        self.monitor = Monitor(resolved.config.monitor)
        self._splits: Splits | None = None
        self._backbone_digest: str | None = None

    @property
    def config(self) -> RunConfig:
        return self.resolved.config

    @property
    def has_data(self) -> bool:
        return self._splits is not None

    @property
    def splits(self) -> Splits:
        """The dataset's splits: :func:`~zoo.train.protocol.load_data`."""
        assert self._splits is not None, "load_data comes first"
        return self._splits

    @splits.setter
    def splits(self, splits: Splits) -> None:
        self._splits = splits

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The checkpoint a resume continues from (``None``: a new run, or one stopped
        before its first epoch ended)."""
        return self.reopened.checkpoint if self.reopened is not None else None

    def backbone_digest(self) -> str:
        """The backbone's weights digest, computed when first asked: the identity of
        cached features, and of a checkpoint that holds the head alone."""
        if self._backbone_digest is None:
            self._backbone_digest = feature_cache.weights_digest(self.assembled.backbone)
        return self._backbone_digest
