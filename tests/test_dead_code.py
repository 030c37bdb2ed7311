"""The dead-code check of .ci/run: vulture finds nothing unused in zoo/ and plugins/.

The tests run the vulture line of .ci/run itself, so the check here and in CI cannot
drift apart. Names that only a framework or the public API uses are listed, each with
its reason, in .ci/vulture_whitelist.py.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHITELIST = ROOT / ".ci" / "vulture_whitelist.py"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vulture") is None,
    reason="vulture is not installed (pip install -e '.[test]' installs it)",
)


def ci_command() -> list[str]:
    """The vulture line of .ci/run, run by this interpreter's vulture."""
    lines = [
        line
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.startswith("vulture ")
    ]
    assert len(lines) == 1, f".ci/run should run vulture once: {lines}"
    return [sys.executable, "-m", *shlex.split(lines[0])]


def vulture(*paths: str) -> subprocess.CompletedProcess[str]:
    """Run the command of .ci/run, on ``paths`` besides its own."""
    python, m, name, *rest = ci_command()
    return subprocess.run(
        [python, m, name, *paths, *rest], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_vulture_finds_no_dead_code_in_zoo_and_the_built_in_plugins():
    found = vulture()
    assert found.returncode == 0 and not found.stdout, (
        "remove the dead code, or list a name only a framework uses in "
        f".ci/vulture_whitelist.py with its reason:\n{found.stdout}{found.stderr}"
    )


def test_the_check_reports_a_function_nothing_calls(tmp_path):
    module = tmp_path / "forgotten.py"
    module.write_text("def forgotten_helper():\n    return 1\n", encoding="utf-8")
    found = vulture(str(module))
    assert found.returncode != 0
    assert "unused function 'forgotten_helper'" in found.stdout


def whitelisted() -> list[str]:
    tree = ast.parse(WHITELIST.read_text(encoding="utf-8"))
    return [
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "_"
    ]


def test_every_whitelisted_name_is_still_in_the_code():
    names = whitelisted()
    assert "register_datasets" in names
    source = "\n".join(
        path.read_text(encoding="utf-8")
        for folder in ("zoo", "plugins")
        for path in sorted((ROOT / folder).rglob("*.py"))
    )
    stale = [name for name in names if not re.search(rf"\b{re.escape(name)}\b", source)]
    assert not stale, f"names no longer in zoo/ or plugins/: drop them from the whitelist: {stale}"
