"""The plugin author's guide stays true: hooks, signatures and examples as in the code.

Meta-tests in the manner of datasette's ``tests/test_docs.py``: every hookspec is in
docs/plugins.md with its exact signature and has a test, every constructor the guide
shows lists the real fields in order, and every example plugin in the guide loads
and keeps zoo's contracts.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import json
import re
from pathlib import Path

import pytest

import zoo
import zoo.testing
from zoo import hookspecs
from zoo.config.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
SETTINGS_PAGE = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
TOOL = ROOT / "tools" / "readme_backbones.py"
HOOKS = [
    function
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(function, "zoo_spec")
]
#: The Python examples of the guide that define a plugin, by their first-line comment.
EXAMPLES = {
    block.partition("\n")[0].removeprefix("# "): block
    for block in re.findall(r"```python\n(.*?)```", GUIDE, re.DOTALL)
    if "@zoo.hookimpl" in block
}


def signature(function: object) -> str:
    """The ``def`` line(s) of ``function`` as written in its source, up to the colon."""
    source = inspect.getsource(function)
    return source[source.index("def ") : source.index(":\n", source.index(")")) + 1]


def test_zoo_has_its_five_hooks():
    assert [hook.__name__ for hook in HOOKS] == [
        "register_backbones",
        "register_datasets",
        "register_heads",
        "register_keras_objects",
        "register_observers",
    ]


@pytest.mark.parametrize("hook", HOOKS, ids=lambda hook: hook.__name__)
def test_every_hookspec_is_in_the_guide_with_its_exact_signature(hook):
    section = GUIDE.split(f"### `{hook.__name__}`\n", 1)

    assert len(section) == 2, f"docs/plugins.md has no section ### `{hook.__name__}`"
    assert f"```python\n{signature(hook)}\n```" in section[1].split("\n### ", 1)[0]


@pytest.mark.parametrize("hook", HOOKS, ids=lambda hook: hook.__name__)
def test_every_hookspec_has_a_test(hook):
    tests = {
        node.name
        for path in (ROOT / "tests").glob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef)
    }

    assert f"test_hook_{hook.__name__}" in tests


def test_the_guide_shows_check_plugins_exact_signature():
    assert f"```python\n{signature(zoo.testing.check_plugin)}\n```" in GUIDE


@pytest.mark.parametrize(
    "cls",
    [
        zoo.Dataset,
        zoo.Backbone,
        zoo.Head,
        zoo.Observer,
        zoo.Splits,
        zoo.BuiltBackbone,
        zoo.BuiltHead,
        zoo.Param,
        zoo.Download,
    ],
    ids=lambda cls: cls.__name__,
)
def test_every_constructor_in_the_guide_lists_the_real_fields_in_order(cls):
    shown = re.search(rf"`zoo\.{cls.__name__}\((.*?)\)`", GUIDE, re.DOTALL)

    assert shown, f"docs/plugins.md does not show zoo.{cls.__name__}(...)"
    call = ast.parse(f"f({shown.group(1)})").body[0].value
    names = [arg.id for arg in call.args] + [keyword.arg for keyword in call.keywords]
    assert names == [field.name for field in dataclasses.fields(cls)]


def test_the_guide_has_an_example_plugin_for_every_hook():
    implemented = {
        node.name
        for block in EXAMPLES.values()
        for node in ast.walk(ast.parse(block))
        if isinstance(node, ast.FunctionDef)
        and any(ast.unparse(decorator) == "zoo.hookimpl" for decorator in node.decorator_list)
    }

    assert implemented == {hook.__name__ for hook in HOOKS}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_plugin_in_the_guide_keeps_zoos_contracts(name: str, tmp_path: Path):
    path = tmp_path / name
    path.write_text(EXAMPLES[name], encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    report = zoo.testing.check_plugin(
        module, params={"colours": {"num_images": 40}} if name == "colours.py" else None
    )

    assert len(report.checked) == 1 and not report.skipped
    # Backbones and heads are saved, then loaded and predicted in a new process.
    models = [c for c in report.checked if c.startswith(("backbone", "head"))]
    assert report.round_trips == models


def settings_table() -> str:
    """docs/settings.md's table, as the declarations in zoo/config/settings.py make it."""

    rows = [
        "| setting | flag | type | default | allowed | what it does |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| `{s.name}` | `{s.flag}` | {s.type_name} | `{json.dumps(s.default)}` "
            f"| {s.allowed} | {s.help} |"
            for s in SETTINGS
        ),
    ]
    return "\n".join(rows)


def test_the_settings_page_shows_every_declared_setting():
    table = settings_table()

    assert table in SETTINGS_PAGE, f"update the table in docs/settings.md to:\n{table}"


def test_the_readmes_table_of_backbones_is_made_from_the_registry():
    """``python tools/readme_backbones.py`` remakes it; every built-in backbone is a row."""
    pytest.importorskip("keras_hub", reason="the table lists the KerasHub backbones")
    spec = importlib.util.spec_from_file_location("readme_backbones", TOOL)
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    registry = tool.builtin_registry()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    assert tool.with_table(readme, registry) == readme, "run python tools/readme_backbones.py"
    for entry in registry.entries("backbone"):
        assert f"| `{entry.name}` |" in readme
