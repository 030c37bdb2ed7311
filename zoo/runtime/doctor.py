"""``zoo doctor``: what this machine gives zoo, and what stands in its way.

It reports versions (Python, zoo, TensorFlow, Keras, TFDS, KerasHub, each plugin's
package), the devices TensorFlow sees and, without a GPU, the likeliest reason, the
precision ``--precision auto`` picks, the plugins' health, each cache's location and
size, and the free space where the caches are.

Every fact becomes a :class:`Finding` at one :data:`Level`. A ``problem`` stops zoo
from working as installed (TensorFlow does not import, a plugin failed, a cache cannot
be written): ``zoo doctor`` then exits 1. A ``warning`` is worth knowing but zoo works
(no GPU, so training runs on the CPU; under :data:`LOW_DISK` bytes free; an optional
plugin unavailable); it exits 0.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from zoo._version import __version__
from zoo.registry import Registry
from zoo.runtime import loader, patches
from zoo.storage import caches

Level = Literal["ok", "info", "warning", "problem"]
#: Free bytes under which the disk holding a cache is a warning: room for a dataset
#: archive and what TFDS prepares from it (cats_vs_dogs' archive alone is 825 MB),
#: plus a few backbones' weights.
LOW_DISK = 5 * 10**9
#: From this compute capability on, ``--precision auto`` trains in mixed float16
#: (tensor cores), as ``zoo.train.distribute`` decides.
TENSOR_CORES = (7, 0)
#: The distributions whose versions decide what zoo can do, by the name zoo shows.
PACKAGES = {
    "tensorflow": "tensorflow",
    "keras": "keras",
    "tfds": "tensorflow-datasets",
    "keras-hub": "keras-hub",
    "kagglehub": "kagglehub",
}
_PROC_DRIVER = Path("/proc/driver/nvidia/version")


@dataclass(frozen=True)
class Finding:
    """One line of the report: a topic, how it stands, what was found, how to fix it."""

    topic: str
    level: Level
    text: str
    fix: str | None = None


@dataclass(frozen=True)
class GpuFacts:
    """What decides whether TensorFlow sees a GPU.

    Args:
        gpus: ``"NVIDIA H200 (compute capability 9.0)"`` for each GPU TensorFlow sees.
        capabilities: Each GPU's compute capability, when TensorFlow knows it.
        built_with_cuda: ``tf.test.is_built_with_cuda()``; ``False`` for CPU-only wheels.
        cuda: The CUDA and cuDNN versions TensorFlow was built with (``get_build_info``).
        driver: The NVIDIA driver's version line, or where ``nvidia-smi`` is; ``None``
            when neither ``/proc/driver/nvidia`` nor ``nvidia-smi`` exists.
        visible: ``$CUDA_VISIBLE_DEVICES``, when set.
    """

    gpus: tuple[str, ...] = ()
    capabilities: tuple[tuple[int, int], ...] = ()
    built_with_cuda: bool = False
    cuda: str | None = None
    driver: str | None = None
    visible: str | None = None


@dataclass
class Report:
    """Everything ``zoo doctor`` found, as the table and ``--json`` show it."""

    findings: list[Finding] = field(default_factory=list)
    versions: dict[str, str | None] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)
    gpu: GpuFacts | None = None
    caches: list[dict[str, Any]] = field(default_factory=list)
    disks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(f.level != "problem" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "versions": self.versions,
            "devices": self.devices,
            "gpu": asdict(self.gpu) if self.gpu else None,
            "caches": self.caches,
            "disks": self.disks,
            "findings": [asdict(f) for f in self.findings],
        }


def examine(registry: Registry) -> Report:
    """Look at this machine; imports TensorFlow (quietly)."""
    report = Report()
    report.versions = versions()
    report.findings += [
        Finding(name, "ok" if version else "info", version or "not installed")
        for name, version in report.versions.items()
    ]
    try:
        loader.load()
    except Exception as exc:  # a broken install must be reported, not crash the doctor
        report.findings.append(_no_tensorflow(exc))
    else:
        report.devices, report.gpu = _devices(), gpu_facts()
        report.findings += [
            Finding("devices", "ok", ", ".join(report.devices)),
            gpu_verdict(report.gpu),
            precision_verdict(report.gpu),
        ]
    if not patches.enabled():
        report.findings.append(_patches_off())
    report.findings += list(plugin_findings(registry))
    report.caches = [cache_facts(c) for c in caches.known()]
    report.findings += list(_cache_findings(report.caches))
    report.disks = disk_facts(report.caches)
    report.findings += [_disk_finding(d) for d in report.disks]
    return report


def _patches_off() -> Finding:
    text = f"off ({patches.ENV} is set): TensorFlow and OpenVINO run as they come, slower"
    return Finding("patches", "info", text, fix=f"unset {patches.ENV} once the cause is found")


def versions() -> dict[str, str | None]:
    """Python's, zoo's and the packages' versions, read without importing them."""
    found: dict[str, str | None] = {
        "python": f"{platform.python_version()} ({sys.executable})",
        "zoo": __version__,
    }
    for shown, distribution in PACKAGES.items():
        try:
            found[shown] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[shown] = None
    return found


def gpu_facts() -> GpuFacts:
    """Ask TensorFlow (already imported) and the system what decides GPU use."""
    import tensorflow as tf

    gpus, capabilities = [], []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")
        name = details.get("device_name", gpu.name)
        gpus.append(f"{name} (compute capability {'.'.join(map(str, capability or ('?',)))})")
        if capability:
            capabilities.append((int(capability[0]), int(capability[1])))
    build = tf.sysconfig.get_build_info()
    cuda = build.get("cuda_version")
    return GpuFacts(
        gpus=tuple(gpus),
        capabilities=tuple(capabilities),
        built_with_cuda=bool(tf.test.is_built_with_cuda()),
        cuda=f"CUDA {cuda}, cuDNN {build.get('cudnn_version', '?')}" if cuda else None,
        driver=nvidia_driver(),
        visible=os.environ.get("CUDA_VISIBLE_DEVICES"),
    )


def nvidia_driver() -> str | None:
    """The driver's version line from ``/proc/driver/nvidia``, else ``nvidia-smi``'s path."""
    try:
        return _PROC_DRIVER.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError):
        pass
    smi = shutil.which("nvidia-smi")
    return f"nvidia-smi at {smi}" if smi else None


def gpu_verdict(facts: GpuFacts) -> Finding:
    """The GPUs TensorFlow sees, or the likeliest reason it sees none, with the fix."""
    if facts.gpus:
        return Finding("gpu", "ok", "; ".join(facts.gpus))
    if facts.driver is None:
        wheel = "" if facts.built_with_cuda else " (and this TensorFlow is a CPU-only build)"
        return Finding(
            "gpu",
            "warning",
            f"no GPU: no NVIDIA driver (no {_PROC_DRIVER.parent}, no nvidia-smi){wheel}; zoo "
            "trains on the CPU",
            fix="on a machine with an NVIDIA GPU, install its driver; nvidia-smi then lists it",
        )
    if not facts.built_with_cuda:
        return Finding(
            "gpu",
            "warning",
            f"no GPU: an NVIDIA driver is present ({facts.driver}) but this TensorFlow is a "
            "CPU-only build (tf.test.is_built_with_cuda() is False)",
            fix="pip install 'tensorflow[and-cuda]' (Linux) for a build with CUDA",
        )
    if facts.visible is not None and facts.visible.strip() in ("", "-1"):
        return Finding(
            "gpu",
            "warning",
            f"no GPU: CUDA_VISIBLE_DEVICES={facts.visible!r} hides every GPU from TensorFlow",
            fix="unset CUDA_VISIBLE_DEVICES, or list the GPUs to use (CUDA_VISIBLE_DEVICES=0,1)",
        )
    return Finding(
        "gpu",
        "warning",
        f"no GPU: TensorFlow is built with {facts.cuda or 'CUDA'} and an NVIDIA driver is "
        f"present ({facts.driver}), yet TensorFlow sees no GPU: most likely a CUDA mismatch "
        "(a driver too old for that CUDA, or its CUDA libraries missing)",
        fix="pip install 'tensorflow[and-cuda]' brings the CUDA libraries it was built with; "
        "nvidia-smi shows the highest CUDA the driver supports; zoo doctor --verbose shows "
        "TensorFlow's own messages about loading CUDA",
    )


def precision_verdict(facts: GpuFacts) -> Finding:
    """What ``--precision auto`` picks here, and why."""
    if not facts.gpus:
        return Finding("mixed precision", "info", "float32: no GPU (--precision auto)")
    fast = facts.capabilities and len(facts.capabilities) == len(facts.gpus)
    if fast and all(c >= TENSOR_CORES for c in facts.capabilities):
        return Finding("mixed precision", "ok", "mixed_float16: every GPU has tensor cores")
    return Finding(
        "mixed precision",
        "info",
        "float32: a GPU below compute capability 7.0 (no tensor cores), so --precision auto "
        "keeps float32",
    )


def plugin_findings(registry: Registry) -> Iterator[Finding]:
    """One line per plugin: its package and version, and what became of it."""
    levels: dict[str, Level] = {"ok": "ok", "disabled": "info", "unavailable": "warning"}
    for plugin in registry.plugins:
        level = levels.get(plugin.status, "problem")
        fix = plugin.install if plugin.status == "unavailable" else None
        if plugin.status == "failed":
            fix = "fix or upgrade it, or skip it: --disable-plugin or $ZOO_DISABLE_PLUGINS"
        text = plugin.origin + ("" if plugin.status == "ok" else f": {plugin.state}")
        yield Finding(f"plugin {plugin.name}", level, text, fix)


def cache_facts(cache: caches.Cache) -> dict[str, Any]:
    """Where a cache is, whether it exists and can be written, and what it holds."""
    files, size = _usage(cache.path)
    return {
        "name": cache.name,
        "path": str(cache.path),
        "variable": cache.variable,
        "exists": cache.path.is_dir(),
        "writable": os.access(caches.existing_folder(cache.path), os.W_OK),
        "problem": cache.problem(),
        "files": files,
        "bytes": size,
    }


def disk_facts(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Free and total space of each file system holding a cache (each listed once)."""
    disks: dict[int, dict[str, Any]] = {}
    for cache in found:
        where = _mount(caches.existing_folder(Path(cache["path"])))
        device = where.stat().st_dev
        if device not in disks:
            usage = shutil.disk_usage(where)
            disks[device] = {
                "path": str(where),
                "free": usage.free,
                "total": usage.total,
                "caches": [],
            }
        disks[device]["caches"].append(cache["name"])
    return list(disks.values())


def _devices() -> list[str]:
    import tensorflow as tf

    return [d.name.removeprefix("/physical_device:") for d in tf.config.list_physical_devices()]


def _no_tensorflow(exc: Exception) -> Finding:
    return Finding(
        "tensorflow",
        "problem",
        f"TensorFlow does not import: {type(exc).__name__}: {exc}",
        fix="pip install --force-reinstall 'tensorflow>=2.16' in this environment",
    )


def _cache_findings(found: list[dict[str, Any]]) -> Iterator[Finding]:
    """A problem for a cache that cannot serve (a file in its way, a folder zoo must
    write that cannot be written); a warning for a read-only folder of downloads."""
    for cache in found:
        if cache["problem"]:
            yield Finding(
                f"cache {cache['name']}",
                "problem",
                cache["problem"],
                fix=f"point ${cache['variable']} at a folder zoo can create or write, "
                "or remove what is in the way",
            )
        elif not cache["writable"]:
            yield Finding(
                f"cache {cache['name']}",
                "warning",
                f"{cache['path']} cannot be written",
                fix=f"make it writable, or point ${cache['variable']} at a folder that is",
            )


def _disk_finding(disk: dict[str, Any]) -> Finding:
    free = disk["free"]
    text = f"{free / 1e9:.1f} GB free of {disk['total'] / 1e9:.1f} GB at {disk['path']}"
    if free >= LOW_DISK:
        return Finding("disk", "ok", text)
    return Finding(
        "disk",
        "warning",
        text + f" (under {LOW_DISK / 1e9:.0f} GB)",
        fix="free some space, or move the caches (" + ", ".join(disk["caches"]) + ") elsewhere",
    )


def _usage(folder: Path) -> tuple[int, int]:
    """Files under ``folder`` and their bytes, links not followed."""
    files = size = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                stat = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            files += 1
            size += stat.st_size
    return files, size


def _mount(path: Path) -> Path:
    """The mount point of the file system holding ``path``."""
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path
