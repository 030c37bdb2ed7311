"""The example third-party package, installed as a user would: listed, and trainable.

CI installs it (``pip install -e ./examples/zoo-plugin-example``, see ``.ci/run``), so
these tests fail, not skip, when it is missing: a skip would hide a broken install.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import TINY_RUN, run_zoo

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "zoo-plugin-example"
PROJECT = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
COMPONENTS = {"dataset": "gratings", "backbone": "separable_cnn", "head": "attention_pool"}


@pytest.fixture(scope="module", autouse=True)
def installed() -> importlib.metadata.Distribution:
    """The example's distribution; a clear failure, saying how to install it, if absent."""
    try:
        dist = importlib.metadata.distribution(PROJECT["name"])
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(
            f"{PROJECT['name']} is not installed; install it with "
            f"`pip install -e ./examples/zoo-plugin-example` (CI does, in .ci/run)"
        )
    assert dist.version == PROJECT["version"], (
        f"{PROJECT['name']} {dist.version} is installed, but the checkout has "
        f"{PROJECT['version']}: reinstall it with `pip install -e ./examples/zoo-plugin-example`"
    )
    return dist


def test_zoo_list_shows_its_components_with_package_and_version():
    result = run_zoo("list", "--json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    for kind, name in COMPONENTS.items():
        [entry] = [e for e in data[f"{kind}s"] if e["name"] == name]
        assert entry["qualified_name"] == f"example:{name}"
        assert (entry["package"], entry["version"]) == (PROJECT["name"], PROJECT["version"])
        assert entry["source"] == "entry point"


def test_zoo_plugins_reports_it_loaded_from_its_entry_point():
    plugins = {p["name"]: p for p in run_zoo("plugins", "--json").json()}

    example = plugins["example"]
    assert (example["status"], example["source"]) == ("ok", "entry point")
    assert example["location"] == "zoo_plugin_example.plugin"
    assert set(example["components"]) == {f"{k}:{n}" for k, n in COMPONENTS.items()}


def test_loading_it_imports_neither_tensorflow_nor_keras():
    code = (
        "import sys, zoo\n"
        "registry = zoo.load_registry()\n"
        "assert registry.get('backbone', 'separable_cnn').plugin.name == 'example'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_its_own_tests_pass_as_its_author_runs_them():
    """examples/zoo-plugin-example/tests: zoo.testing's check, then what is the example's own."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout.splitlines()[-1]


@pytest.mark.parametrize(
    "names",
    [
        ("gratings", "small_cnn", "gap_softmax"),
        ("shapes", "separable_cnn", "gap_sigmoid"),
        ("shapes", "small_cnn", "attention_pool"),
    ],
    ids=["its-dataset", "its-backbone", "its-head"],
)
def test_zoo_run_trains_each_of_its_components_mixed_with_builtins(zoo_cli, isolated, names):
    result = zoo_cli("run", *names, *TINY_RUN, "--json")

    assert result.exit_code == 0, result.stderr
    assert result.json()["status"] == "completed"
    run_dir = isolated / result.json()["run_dir"]
    config = json.loads((run_dir / "config.json").read_text())
    plugins = {kind: config[kind]["plugin"] for kind in COMPONENTS}
    assert list(plugins.values()).count("example") == 1
