"""Importing TensorFlow late, and keeping the libraries zoo drives quiet.

Unless ``--verbose``, what TensorFlow, Keras, TFDS and their downloads say on their own
stays off the terminal, so zoo's output is what the user reads:

- TensorFlow's C++ log lines (absl, oneDNN, CUDA probing): it reads
  ``TF_CPP_MIN_LOG_LEVEL`` when it loads, and absl and the CUDA stub write to file
  descriptor 2 while it loads, before any setting applies, so :func:`load` imports it
  with descriptor 2 redirected;
- Python warnings raised inside those libraries (Keras's "`input_shape` is undefined
  or non-square", say), wherever their ``stacklevel`` points: a plugin's own warnings
  still show;
- their loggers' warnings: ``absl`` (TFDS's notes), ``urllib3`` (each retried download);
- TFDS's progress bars.

Commands and library entry points such as ``zoo.testing.check_plugin`` run inside
:func:`quiet`, which puts the loggers, warnings and progress bars back as they were
afterwards (TensorFlow, once loaded, stays quiet).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

from zoo.runtime import patches

if TYPE_CHECKING:
    import keras  # noqa: F401  (the type of `from zoo.runtime.loader import keras`)
    import tensorflow as tf

#: Where warnings come from that only ``--verbose`` shows.
LIBRARIES = ("tensorflow", "keras", "keras_hub", "tensorflow_datasets", "tf_keras", "absl")
#: Loggers that only ``--verbose`` shows below ERROR.
LOGGERS = ("tensorflow", "absl", "urllib3", "h5py")
#: Read by TensorFlow's C++ logging and gRPC when they load.
ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR"}
#: The modules that call ``showwarning`` (``_py_warnings`` from Python 3.14).
_WARNINGS_MODULES = ("warnings", "_py_warnings")

_verbose = False


@contextlib.contextmanager
def quiet(verbose: bool = False) -> Iterator[None]:
    """Keep the libraries' own output off the terminal within the block, unless ``verbose``.

    Nested blocks are fine: each puts back what it found.
    """
    global _verbose
    before, levels, show = _verbose, _logger_levels(), warnings.showwarning
    undo: list[Callable[[], None]] = []
    _verbose = verbose
    try:
        if not verbose:
            undo.append(_quiet_environment())
            for name in LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
            warnings.showwarning = _ShowUnlessLibrary(show)
            undo.append(_progress_bars_off())
        yield
    finally:
        _verbose = before
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        warnings.showwarning = show
        for step in undo:
            step()


#: What a module that needs them imports from here, at its top: ``from zoo.runtime.loader
#: import keras, tf``. The first such import runs :func:`load`.
_LIBRARIES = {"tf": "tensorflow", "keras": "keras"}


def __getattr__(name: str) -> ModuleType:
    """``tf`` and ``keras``, imported by :func:`load` on first use."""
    if name not in _LIBRARIES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    load()
    return sys.modules[_LIBRARIES[name]]


def load() -> None:
    """Import TensorFlow and Keras, silencing their start-up chatter unless verbose, with
    the patches that speed the import up (:func:`zoo.runtime.patches.loading_tensorflow`)."""
    if "keras" in sys.modules and "tensorflow" in sys.modules:
        return
    with patches.loading_tensorflow():
        if _verbose:
            import keras
            import tensorflow  # noqa: F401
        else:
            _quiet_environment()
            with _fd2_silenced():
                import keras  # noqa: F401
                import tensorflow as tf
            # TensorFlow sets up its logger as it loads.
            tf.get_logger().setLevel(logging.ERROR)


def _quiet_environment() -> Callable[[], None]:
    """Set what the user has not set of :data:`ENVIRONMENT`; return how to unset it."""
    unset = [name for name in ENVIRONMENT if name not in os.environ]
    for name in unset:
        os.environ[name] = ENVIRONMENT[name]

    def undo() -> None:
        for name in unset:
            os.environ.pop(name, None)

    return undo


def _logger_levels() -> dict[str, int]:
    return {name: logging.getLogger(name).level for name in LOGGERS}


class _ShowUnlessLibrary:
    """``warnings.showwarning`` that drops warnings raised by code in :data:`LIBRARIES`.

    Keras warns with ``stacklevel=2``, which names the caller (a plugin's builder), so
    ``warnings.filterwarnings(module=...)`` cannot tell; the frame that called
    ``warnings.warn`` can.
    """

    def __init__(self, show: Callable[..., None]) -> None:
        self.show = show

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        if not _raised_in(sys._getframe(1), LIBRARIES):
            self.show(*args, **kwargs)


def _raised_in(frame: FrameType | None, packages: Sequence[str]) -> bool:
    """The first frame outside the warnings machinery belongs to one of ``packages``."""
    while frame is not None and frame.f_globals.get("__name__") in _WARNINGS_MODULES:
        frame = frame.f_back
    module = frame.f_globals.get("__name__", "") if frame is not None else ""
    return module.split(".")[0] in packages


def _progress_bars_off() -> Callable[[], None]:
    """Turn TFDS's progress bars off, now or once it is imported; return how to undo it.

    zoo never imports TFDS itself (plugins do, in their builders), and importing it only
    to switch it off would cost every command a quarter of a second.
    """
    loaded = sys.modules.get("tensorflow_datasets")
    if loaded is not None:
        loaded.display_progress_bar(False)
        return lambda: loaded.display_progress_bar(True)
    hook = _AfterImport("tensorflow_datasets", lambda tfds: tfds.display_progress_bar(False))
    sys.meta_path.insert(0, hook)

    def undo() -> None:
        hook.remove()
        if hook.imported is not None:
            hook.imported.display_progress_bar(True)

    return undo


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``then(module)`` once the module ``name`` has been imported."""

    def __init__(self, name: str, then: Callable[[ModuleType], None]) -> None:
        self.name = name
        self.then = then
        self.imported: ModuleType | None = None

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        self.remove()  # the other finders find it
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            execute = spec.loader.exec_module

            def exec_module(module: ModuleType) -> None:
                execute(module)
                self.then(module)
                self.imported = module

            # An instance attribute: this one import runs ``then`` afterwards.
            setattr(spec.loader, "exec_module", exec_module)  # noqa: B010
        return spec

    def remove(self) -> None:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)


@contextlib.contextmanager
def _fd2_silenced() -> Iterator[None]:
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def without_autotuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` with tf.data's autotuning off, as every pipeline zoo iterates (and,
    under a strategy that places batches on devices, the per-device datasets TensorFlow
    builds: :func:`zoo.runtime.patches.untuned_device_datasets`).

    With autotuning on, destroying an iterator at the end of a pass waits for its tuning
    thread, whose wake-up is sometimes missed (TensorFlow 2.21), so the pass can end
    seconds late with no CPU used (docs/architecture.md). Off, a parallel map runs on as
    many threads as the CPU has cores, and ``prefetch(AUTOTUNE)`` still sizes its buffer.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
