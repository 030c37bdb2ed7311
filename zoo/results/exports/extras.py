"""The optional packages an export format needs, and the error naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from zoo.errors import ZooError


def require(module: str, extra: str, needed_for: str) -> ModuleType:
    """Import ``module``, or explain which of zoo's extras installs it.

    Args:
        module: The import name, such as ``"onnxruntime"``.
        extra: zoo's extra that installs it, such as ``"onnx"``.
        needed_for: What needs it, such as ``"checking an ONNX export"``.

    Raises:
        ZooError: the module is not installed (or fails to import).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ZooError(
            f"{needed_for} needs the Python package '{module}', which is not installed here "
            f"({type(exc).__name__}: {exc}).",
            expected=f"zoo installed with its '{extra}' extra",
            fix=f"pip install 'zoo[{extra}]' (or pip install {module.split('.')[0]})",
            got=module,
        ) from None
