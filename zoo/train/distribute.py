"""Choosing where to train: the distribution strategy, its devices, and the precision.

``auto`` picks what the machine has: ``TF_CONFIG`` set means several workers
(``MultiWorkerMirroredStrategy``, once every peer answers: :mod:`zoo.train.workers`);
several GPUs, ``MirroredStrategy``; one GPU, that GPU; otherwise the CPU. The batch
size a user gives is always the global batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zoo.errors import ZooError
from zoo.train import workers
from zoo.train.events import RunWarning

if TYPE_CHECKING:
    import tensorflow as tf

STRATEGIES = ("auto", "default", "mirrored", "multiworker")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")

#: GPUs from this compute capability on have tensor cores that make float16 pay.
_MIXED_FLOAT16_CAPABILITY = (7, 0)


@dataclass(frozen=True)
class Placement:
    """The strategy chosen, its devices, and whether this process writes the run."""

    strategy: tf.distribute.Strategy
    name: str
    devices: tuple[str, ...]
    is_chief: bool = True
    workers: int = 1

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    def describe(self) -> str:
        where = ", ".join(self.devices)
        workers = f" x {self.workers} workers" if self.workers > 1 else ""
        return f"{self.name} on {where}{workers} ({self.replicas} replicas in sync)"


def place(name: str = "auto", warn: Callable[[RunWarning], None] | None = None) -> Placement:
    """The strategy called ``name`` (one of ``STRATEGIES``) for this machine.

    Args:
        warn: Told when other workers do not answer at once, and zoo waits for them.

    Raises:
        ZooError: an unknown name, ``multiworker`` without ``TF_CONFIG``, a malformed
            ``TF_CONFIG``, or a peer that does not answer in time.
    """
    import tensorflow as tf

    cluster = _cluster(name)
    if cluster is not None:
        # Before anything initialises TensorFlow's runtime: collective ops must be
        # configured first ("Collective ops must be configured at program startup").
        return _multiworker(cluster, warn or (lambda warning: None))
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        return Placement(strategy, "MirroredStrategy", tuple(devices))
    device = gpus[0] if gpus else tf.config.list_logical_devices("CPU")[0].name
    if gpus:
        return Placement(tf.distribute.OneDeviceStrategy(device), "OneDeviceStrategy", (device,))
    return Placement(tf.distribute.get_strategy(), "default", (device,))


def writes_run(name: str = "auto") -> bool:
    """Whether this process writes the run directory with strategy ``name``: it does,
    unless it is a worker of several other than the chief. Read before TensorFlow loads.

    Raises:
        ZooError: as :func:`place` does for ``name`` and ``TF_CONFIG``.
    """
    cluster = _cluster(name)
    return cluster is None or cluster.is_chief


def _cluster(name: str) -> workers.Cluster | None:
    """The cluster that strategy ``name`` trains on, checked; ``None`` for this machine."""
    if name not in STRATEGIES:
        raise ZooError(
            f"unknown strategy '{name}'.",
            expected=f"one of {', '.join(STRATEGIES)}",
            fix="pass --strategy auto (the default) to let zoo choose",
            got=name,
        )
    cluster = workers.read()
    if name == "multiworker" and cluster is None:
        raise ZooError(
            "--strategy multiworker needs TF_CONFIG, which is not set.",
            expected=f"TF_CONFIG describing the cluster and this task: {workers.EXAMPLE}",
            fix="set TF_CONFIG on every worker (docs/architecture.md, 'Several machines')",
        )
    return cluster if name in ("multiworker", "auto") else None


def _multiworker(cluster: workers.Cluster, warn: Callable[[RunWarning], None]) -> Placement:
    import tensorflow as tf

    fix = f"start the other workers; each waits up to {workers.ENV} seconds for the rest"
    workers.wait_for_peers(cluster, lambda text: warn(RunWarning("workers_waiting", text, fix)))
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    devices = tuple(d.name for d in tf.config.list_logical_devices("GPU")) or ("/CPU:0",)
    return Placement(
        strategy, "MultiWorkerMirroredStrategy", devices, cluster.is_chief, cluster.workers
    )


def choose_precision(name: str, placement: Placement) -> str:
    """The Keras dtype policy for ``name`` (one of ``PRECISIONS``) on these devices.

    ``auto`` is ``mixed_float16`` when every device is a GPU with compute capability
    7.0 or more (tensor cores), and ``float32`` otherwise.
    """
    if name not in PRECISIONS:
        raise ZooError(
            f"unknown precision '{name}'.",
            expected=f"one of {', '.join(PRECISIONS)}",
            fix="pass --precision auto (the default)",
            got=name,
        )
    if name != "auto":
        return name
    return "mixed_float16" if _all_gpus_have_tensor_cores(placement) else "float32"


def _all_gpus_have_tensor_cores(placement: Placement) -> bool:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus or not all("GPU" in d.upper() for d in placement.devices):
        return False
    for gpu in gpus:
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability is None or tuple(capability) < _MIXED_FLOAT16_CAPABILITY:
            return False
    return True
