"""Choosing where to train: the distribution strategy, its devices, and the precision.

``auto`` picks what the machine has: ``TF_CONFIG`` set means several workers
(``MultiWorkerMirroredStrategy``); several GPUs, ``MirroredStrategy``; one GPU, that GPU;
otherwise the CPU. The batch size a user gives is always the global batch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError

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


def place(name: str = "auto") -> Placement:
    """The strategy called ``name`` (one of ``STRATEGIES``) for this machine.

    Raises:
        ZooError: an unknown name, ``multiworker`` without ``TF_CONFIG``, or a
            malformed ``TF_CONFIG``.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ZooError(
            f"unknown strategy '{name}'.",
            expected=f"one of {', '.join(STRATEGIES)}",
            fix="pass --strategy auto (the default) to let zoo choose",
            got=name,
        )
    cluster = _tf_config()
    if name == "multiworker" or (name == "auto" and cluster):
        # Before anything initialises TensorFlow's runtime: collective ops must be
        # configured first ("Collective ops must be configured at program startup").
        return _multiworker(cluster)
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        return Placement(strategy, "MirroredStrategy", tuple(devices))
    device = gpus[0] if gpus else tf.config.list_logical_devices("CPU")[0].name
    if gpus:
        return Placement(tf.distribute.OneDeviceStrategy(device), "OneDeviceStrategy", (device,))
    return Placement(tf.distribute.get_strategy(), "default", (device,))


def _multiworker(cluster: dict[str, Any] | None) -> Placement:
    import tensorflow as tf

    if not cluster:
        raise ZooError(
            "--strategy multiworker needs TF_CONFIG, which is not set.",
            expected='TF_CONFIG describing the cluster and this task, e.g. {"cluster": '
            '{"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}',
            fix="set TF_CONFIG on every worker (docs/architecture.md, 'Several machines')",
        )
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = cluster.get("task", {})
    workers = len(cluster["cluster"].get("worker", [])) + len(cluster["cluster"].get("chief", []))
    has_chief = bool(cluster["cluster"].get("chief"))
    is_chief = task.get("type") == "chief" or (not has_chief and task.get("index", 0) == 0)
    devices = tuple(d.name for d in tf.config.list_logical_devices("GPU")) or ("/CPU:0",)
    return Placement(strategy, "MultiWorkerMirroredStrategy", devices, is_chief, workers)


def _tf_config() -> dict[str, Any] | None:
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
        if not isinstance(config.get("cluster"), dict) or not isinstance(config.get("task"), dict):
            raise ValueError("needs 'cluster' and 'task' objects")
    except (ValueError, AttributeError) as exc:
        raise ZooError(
            f"TF_CONFIG is not a valid cluster description: {exc}.",
            expected='JSON like {"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
            '"task": {"type": "worker", "index": 0}}',
            fix="correct TF_CONFIG, or unset it to train on this machine alone",
            got=text,
        ) from None
    return config


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
