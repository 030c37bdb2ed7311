"""Shared fixtures: an isolated working directory and the CLI in this process.

Plain helpers (running the ``zoo`` script, writing files, plugin sources) are in
``helpers.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Result, TinyPresets, write_tiny_presets

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every test runs in its own empty directory, with no zoo environment variables.

    Caches (features, image checks) go under the test's directory, never ``~/.cache``.
    """
    monkeypatch.chdir(tmp_path)
    for name in ("ZOO_REGISTRY", "ZOO_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / ".zoo-cache"))
    return tmp_path


@pytest.fixture
def zoo_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``zoo ARGS`` in this process and return its exit code and output."""
    from zoo.cli import main

    def run(*args: str) -> Result:
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def tiny_presets(tmp_path_factory: pytest.TempPathFactory) -> TinyPresets:
    """Tiny KerasHub presets (ResNet, ViT, CLIP), written once per session."""
    pytest.importorskip("keras_hub", reason="needs keras-hub: pip install 'zoo[hub]'")
    return write_tiny_presets(tmp_path_factory.mktemp("kerashub-presets"))
