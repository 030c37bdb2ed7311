"""Importing TensorFlow quietly, and only when something needs it."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator

_verbose = False


def set_verbose(verbose: bool) -> None:
    """Decide, before TensorFlow is imported, whether its log chatter is shown."""
    global _verbose
    _verbose = verbose
    if not verbose:
        # TensorFlow's C++ logging and gRPC read these when they load.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def load() -> None:
    """Import TensorFlow and Keras, silencing their start-up chatter unless verbose."""
    if "keras" in sys.modules and "tensorflow" in sys.modules:
        return
    if _verbose:
        import keras
        import tensorflow  # noqa: F401

        return
    set_verbose(False)
    # absl prints "All log messages before absl::InitializeLog()..." and the CUDA stub
    # prints to file descriptor 2 while TensorFlow loads, before any setting applies.
    with _fd2_silenced():
        import keras  # noqa: F401
        import tensorflow as tf
    tf.get_logger().setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(keras|tensorflow|tensorflow_datasets)(\.|$)")


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
