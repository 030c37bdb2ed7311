"""The public API, ``import zoo``: every name resolves, on first use, and importing zoo
imports neither TensorFlow nor the training engine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import zoo

#: Modules ``import zoo`` must leave unimported: what a plugin or ``zoo list`` never needs.
HEAVY = ["tensorflow", "keras", "zoo.train", "zoo.results", "zoo.model", "zoo.data"]


def fresh_python(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints JSON, returned parsed."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(done.stdout)


def test_import_zoo_imports_neither_tensorflow_nor_the_engine():
    loaded = fresh_python(
        f"import json, sys, zoo\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )

    assert loaded == []


def test_a_plugin_module_using_the_public_api_imports_no_tensorflow():
    """A plugin's module body (hookimpl, Param, Dataset) resolves without TensorFlow."""
    loaded = fresh_python(
        "import json, sys, zoo\n"
        "zoo.Dataset(name='d', description='d', build=print, params=[zoo.Param('x', int, 1)])\n"
        "zoo.hookimpl(lambda register: None)\n"
        "print(json.dumps([m for m in ('tensorflow', 'keras') if m in sys.modules]))"
    )

    assert loaded == []


def test_every_public_name_resolves_in_a_new_process():
    resolved = fresh_python(
        "import json, zoo\n"
        "print(json.dumps({name: getattr(zoo, name) is not None for name in zoo.__all__}))"
    )

    assert resolved == {name: True for name in zoo.__all__}


@pytest.mark.parametrize("name", sorted(set(zoo.__all__) - {"__version__", "hookimpl"}))
def test_each_public_name_is_the_object_its_module_defines(name: str):
    import importlib

    module, attribute = zoo._EXPORTS[name]

    assert getattr(zoo, name) is getattr(importlib.import_module(module), attribute or name)


def test_all_lists_exactly_the_exported_names_and_dir_shows_them():
    assert len(set(zoo.__all__)) == len(zoo.__all__)
    assert set(zoo.__all__) == {"__version__", "hookimpl", *zoo._EXPORTS}
    assert set(zoo.__all__) <= set(dir(zoo))


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = zoo.no_such_name
    assert not hasattr(zoo, "registry_files")


def test_a_subpackage_is_reached_as_an_attribute_as_before():
    """Before names resolved lazily, ``import zoo`` imported the engine, so
    ``zoo.plugins`` and the like were attributes; they still are."""
    same = fresh_python(
        "import json, zoo\nprint(json.dumps(zoo.plugins.load_registry is zoo.load_registry))"
    )

    assert same is True
