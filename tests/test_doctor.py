"""``zoo doctor``: versions, devices, why there is no GPU, plugins, caches and disk."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from helpers import run_zoo, write

from zoo.runtime import doctor
from zoo.runtime.doctor import GpuFacts

H200 = "NVIDIA H200 (compute capability 9.0)"


@pytest.mark.parametrize(
    ("facts", "level", "says"),
    [
        (GpuFacts(gpus=(H200,), capabilities=((9, 0),), built_with_cuda=True), "ok", H200),
        (GpuFacts(built_with_cuda=True), "warning", "no NVIDIA driver (no /proc/driver/nvidia"),
        (GpuFacts(built_with_cuda=False), "warning", "(and this TensorFlow is a CPU-only build)"),
        (
            GpuFacts(built_with_cuda=False, driver="NVRM version: 550.54"),
            "warning",
            "this TensorFlow is a CPU-only build (tf.test.is_built_with_cuda() is False)",
        ),
        (
            GpuFacts(built_with_cuda=True, cuda="CUDA 12.5, cuDNN 9", driver="NVRM 470.1"),
            "warning",
            "built with CUDA 12.5, cuDNN 9 and an NVIDIA driver is present (NVRM 470.1), yet "
            "TensorFlow sees no GPU: most likely a CUDA mismatch",
        ),
        (
            GpuFacts(built_with_cuda=True, driver="NVRM 550", visible=""),
            "warning",
            "CUDA_VISIBLE_DEVICES='' hides every GPU",
        ),
    ],
)
def test_without_a_gpu_the_likeliest_reason_is_named_with_its_fix(facts, level, says):
    finding = doctor.gpu_verdict(facts)

    assert (finding.topic, finding.level) == ("gpu", level)
    assert says in finding.text
    assert (finding.fix is None) == (level == "ok")


@pytest.mark.parametrize(
    ("capabilities", "precision"),
    [((), "float32: no GPU"), (((9, 0), (8, 0)), "mixed_float16"), (((6, 1),), "float32: a GPU")],
)
def test_the_precision_is_the_one_zoo_run_picks(capabilities, precision):
    facts = GpuFacts(gpus=tuple("gpu" for _ in capabilities), capabilities=capabilities)

    assert doctor.precision_verdict(facts).text.startswith(precision)


def test_the_doctor_and_zoo_run_agree_on_tensor_cores():
    from zoo.train.distribute import _MIXED_FLOAT16_CAPABILITY

    assert doctor.TENSOR_CORES == _MIXED_FLOAT16_CAPABILITY


def test_doctor_reports_this_machine_and_its_caches(isolated: Path):
    """The real ``zoo doctor --json`` on caches a previous step filled."""
    keras_home = isolated / "keras"
    write(keras_home / "models" / "a.h5", "x" * 1000)
    write(keras_home / "models" / "b.h5", "y" * 24)
    env = {
        "KERAS_HOME": str(keras_home),
        "TFDS_DATA_DIR": str(isolated / "tfds"),
        "KAGGLEHUB_CACHE": str(isolated / "kagglehub"),
    }

    result = run_zoo("doctor", "--json", env=env)

    assert result.exit_code == 0, result.stderr
    report = result.json()
    assert report["healthy"] is True
    assert report["versions"]["tensorflow"] == importlib.metadata.version("tensorflow")
    assert report["versions"]["keras"] == importlib.metadata.version("keras")
    assert any(d.startswith("CPU") for d in report["devices"])
    caches = {c["name"]: c for c in report["caches"]}
    assert caches["keras models"] | {"files": 2, "bytes": 1024} == caches["keras models"]
    assert caches["keras models"]["path"] == str(keras_home / "models")
    assert caches["tfds data"]["exists"] is False
    assert {"gpu", "mixed precision", "disk", "plugin heads"} <= {
        f["topic"] for f in report["findings"]
    }
    assert all(f["level"] != "problem" for f in report["findings"])


def test_a_failed_plugin_makes_the_doctor_exit_1(zoo_cli, isolated: Path):
    write(isolated / "broken.py", "raise RuntimeError('oops')\n")
    write(isolated / "registry.toml", '[plugins]\nload = ["broken.py"]\n')

    result = zoo_cli("doctor")

    assert result.exit_code == 1
    assert "plugin broken" in result.stdout and "problem" in result.stdout
    assert "RuntimeError: oops" in result.stdout
    assert "1 problem, " in result.stderr and "zoo cannot work as installed" in result.stderr


def test_tensorflow_that_does_not_import_is_a_problem(zoo_cli, monkeypatch: pytest.MonkeyPatch):
    def broken() -> None:
        raise ImportError("libcudart.so.12: cannot open shared object file")

    monkeypatch.setattr(doctor.loader, "load", broken)

    result = zoo_cli("doctor", "--json")

    assert result.exit_code == 1
    (finding,) = [f for f in result.json()["findings"] if f["level"] == "problem"]
    assert finding["topic"] == "tensorflow" and "libcudart.so.12" in finding["text"]


def test_little_free_space_is_a_warning(zoo_cli, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(doctor, "LOW_DISK", 10**18)  # an exabyte: every disk is short

    result = zoo_cli("doctor", "--json")

    assert result.exit_code == 0
    disks = [f for f in result.json()["findings"] if f["topic"] == "disk"]
    assert disks and all(f["level"] == "warning" and "move the caches" in f["fix"] for f in disks)
