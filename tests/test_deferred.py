"""Modules a library imports as it loads but zoo rarely uses are imported on first use
(``zoo/runtime/deferred.py``): Keras's matplotlib import leaves ``import tensorflow``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from zoo.runtime.deferred import Deferred, deferred

#: A package that says when it runs, with a submodule that does too.
PACKAGE = {
    "__init__.py": "import sys\nsys.ran.append('slowpkg')\nvalue = 1\n",
    "sub.py": "import sys\nsys.ran.append('slowpkg.sub')\ndef answer():\n    return 42\n",
}


@pytest.fixture
def ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """``slowpkg`` importable from ``tmp_path``; returns the list of modules that ran."""
    (tmp_path / "slowpkg").mkdir()
    for name, source in PACKAGE.items():
        (tmp_path / "slowpkg" / name).write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    modules: list[str] = []
    monkeypatch.setattr(sys, "ran", modules, raising=False)
    yield modules
    for name in ("slowpkg", "slowpkg.sub"):
        sys.modules.pop(name, None)


def test_a_library_imports_stand_ins_that_run_the_real_module_on_first_use(ran):
    with deferred(("slowpkg",)):
        import slowpkg.sub as sub  # as a library does as it loads
        from slowpkg import sub as same

    assert ran == []  # nothing of slowpkg ran
    assert isinstance(sub, Deferred) and sub.__name__ == "slowpkg.sub"
    assert "slowpkg" not in sys.modules and "slowpkg.sub" not in sys.modules

    assert sub.answer() == 42  # the first use imports the real module
    assert same.answer() == 42
    assert ran == ["slowpkg", "slowpkg.sub"]
    import slowpkg.sub as real

    assert not isinstance(real, Deferred) and real.answer is sub.answer


def test_a_package_already_imported_is_left_alone(ran):
    import slowpkg  # noqa: F401

    with deferred(("slowpkg",)):
        import slowpkg.sub as sub

    assert not isinstance(sub, Deferred) and ran == ["slowpkg", "slowpkg.sub"]


def test_a_stand_in_answers_for_the_real_module_after_the_block(ran):
    with deferred(("slowpkg",)):
        import slowpkg
        import slowpkg.sub

    assert slowpkg.__file__.endswith("__init__.py")  # from the real module
    assert "answer" in dir(slowpkg.sub)
    assert not hasattr(slowpkg.sub, "__path__")  # a module, not a package, as on disk


def test_a_package_not_installed_stays_missing():
    with deferred(("zoo_no_such_package",)), pytest.raises(ImportError):
        import zoo_no_such_package  # noqa: F401


def test_a_submodule_that_does_not_exist_fails_to_import_as_always(ran):
    with deferred(("slowpkg",)), pytest.raises(ImportError):
        import slowpkg.no_such_module  # noqa: F401


#: Loads TensorFlow as every command does, then draws with Keras's gallery.
KERAS_GALLERY = """
import json, sys
import numpy as np
from zoo.runtime import loader
loader.load()
loaded = [name for name in ("matplotlib", "matplotlib.pyplot") if name in sys.modules]
from keras.src.visualization import plot_image_gallery
plot_image_gallery.plot_image_gallery(
    np.full((4, 8, 8, 3), 128.0), rows=2, cols=2, path=sys.argv[1]
)
import matplotlib.pyplot
print(json.dumps([loaded, type(matplotlib.pyplot).__name__]))
"""


def test_loading_tensorflow_leaves_matplotlib_until_keras_draws(tmp_path: Path):
    png = tmp_path / "gallery.png"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KERAS_GALLERY), str(png)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

    loaded, pyplot_type = json.loads(proc.stdout.splitlines()[-1])
    assert loaded == []  # not imported while TensorFlow and Keras loaded
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # Keras's gallery still draws
    assert pyplot_type == "module"  # a later import gets the real pyplot


def test_code_that_uses_the_package_within_the_block_gets_the_real_one(ran):
    with deferred(("slowpkg",)):
        import slowpkg as package

        assert package.value == 1  # a use, not an import: slowpkg runs now
        import slowpkg.sub  # noqa: F401

    assert ran == ["slowpkg", "slowpkg.sub"]
    assert not isinstance(sys.modules["slowpkg.sub"], Deferred)


def test_listing_the_package_within_the_block_lists_the_real_one(ran):
    with deferred(("slowpkg",)):
        import slowpkg

        assert "value" in dir(slowpkg)

    assert ran == ["slowpkg"]


def test_an_error_within_the_block_leaves_no_stand_in_behind(ran):
    finders = list(sys.meta_path)

    with pytest.raises(RuntimeError), deferred(("slowpkg",)):
        import slowpkg.sub  # noqa: F401

        raise RuntimeError("the library failed to load")

    assert "slowpkg" not in sys.modules and "slowpkg.sub" not in sys.modules
    assert sys.meta_path == finders
