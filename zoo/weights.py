"""Weights files: hashes, the Keras cache, and fetching pretrained weights safely.

For plugin authors whose backbones load weights files. Cheap to import: Keras is
imported only when a file has to be downloaded.

:func:`fetch` differs from ``keras.utils.get_file`` in three ways that matter offline:
a file already in the cache is always used and never deleted (Keras deletes a cached
file whose hash does not match when the re-download fails, so a user's copy is lost);
a download lands under a temporary name and is moved into place only when complete and
verified; and a failure is a :class:`zoo.ZooError` that says which file to put where.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from zoo import console
from zoo.errors import ZooError

#: Seconds a download may wait for data before it fails, instead of hanging forever.
DOWNLOAD_TIMEOUT_S = 60.0


def sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file at ``path``, in hex (what run records store)."""
    return _digest(path, "sha256")


def matches_hash(path: str | os.PathLike[str], expected: str) -> bool:
    """Whether the file hashes to ``expected``: SHA-256 if it has 64 hex digits, else MD5.

    Keras publishes MD5 hashes for most application weights; this is its ``"auto"`` rule.
    """
    algorithm = "sha256" if len(expected) == 64 else "md5"
    return _digest(path, algorithm) == expected.lower()


def keras_home() -> Path:
    """Keras's home: ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras`` if ``~`` is read-only).

    Read when called, not when Keras is imported, so a changed ``KERAS_HOME`` applies.
    """
    if "KERAS_HOME" in os.environ:
        return Path(os.environ["KERAS_HOME"]).expanduser()
    base = Path.home()
    return (base if os.access(base, os.W_OK) else Path("/tmp")) / ".keras"


def keras_cache() -> Path:
    """Where Keras keeps downloaded model weights: ``keras_home() / "models"``."""
    return keras_home() / "models"


def fetch(
    file_name: str,
    origin: str,
    file_hash: str | None = None,
    *,
    purpose: str = "pretrained weights",
) -> Path:
    """The weights file ``file_name`` from the Keras cache, downloaded there if missing.

    Args:
        file_name: The file's name in the cache, e.g.
            ``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5``.
        origin: The URL it is downloaded from.
        file_hash: The MD5 or SHA-256 it should have, if known. A cached file that does
            not match is still used (with a warning) and never deleted or replaced.
        purpose: What the file is, for messages, e.g. "the ImageNet weights of
            backbone 'resnet50'".

    Raises:
        ZooError: the file is not cached and cannot be downloaded (offline, a bad
            hash, no space); the message names the file, the folder and the URL.
    """
    target = keras_cache() / file_name
    if target.is_file():
        if file_hash and not matches_hash(target, file_hash):
            console.warning(
                f"{target} does not have the hash Keras publishes ({file_hash}); zoo uses "
                "it as it is and never deletes it. Delete it to download a fresh copy."
            )
        return target
    try:
        _download(target, origin, file_hash)
    except Exception as exc:
        raise _not_fetched(target, origin, purpose, exc) from exc
    return target


def _download(target: Path, origin: str, file_hash: str | None) -> None:
    import keras

    target.parent.mkdir(parents=True, exist_ok=True)
    # A temporary folder beside the target: a failed or interrupted download never
    # leaves a partial file under the real name, and the final rename is atomic.
    with (
        tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as partial,
        _stdout_to_stderr(),
        _socket_timeout(DOWNLOAD_TIMEOUT_S),
    ):
        got = keras.utils.get_file(target.name, origin, file_hash=file_hash, cache_subdir=partial)
        os.replace(got, target)


def _not_fetched(target: Path, origin: str, purpose: str, exc: Exception) -> ZooError:
    return ZooError(
        f"Could not download {purpose} ({target.name}): {_reason(exc)}.",
        expected=f"{target.name} in the Keras cache, {target.parent}",
        fix=f"on a machine with internet access, download {origin} and copy it into "
        f"{target.parent}/ (or point KERAS_HOME at a folder whose models/ holds it); or pass "
        "a local copy with --set backbone.weights=PATH; or start from random weights with "
        "--set backbone.weights=none",
    )


def _reason(exc: BaseException) -> str:
    """Why a download failed, without the URL Keras repeats in its message."""
    import urllib.error

    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, urllib.error.URLError):
        return str(cause.reason)
    return f"{type(exc).__name__}: {exc}".rstrip(".")


def _digest(path: str | os.PathLike[str], algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Keras prints download progress to stdout; zoo keeps stdout for data (``--json``)."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """urllib, under ``get_file``, waits forever on a silent network without one."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
