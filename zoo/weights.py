"""Weights files: hashes, the Keras cache, and fetching pretrained weights safely.

For plugin authors whose backbones load weights files. Cheap to import: nothing here
imports Keras.

:func:`fetch` differs from ``keras.utils.get_file`` in three ways that matter offline:
a file already in the cache is always used and never deleted (Keras deletes a cached
file whose hash does not match when the re-download fails, so a user's copy is lost);
a download lands under a temporary name and is moved into place only when complete and
verified (:mod:`zoo.fetch`, the code ``zoo fetch`` uses); and a failure is a
:class:`zoo.ZooError` that says which file to put where.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from zoo import console
from zoo.caches import keras_cache, keras_home
from zoo.downloads import Download
from zoo.errors import ZooError
from zoo.fetch import Failed, download

__all__ = ["fetch", "keras_cache", "keras_download", "keras_home", "matches_hash", "sha256"]


def sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file at ``path``, in hex (what run records store)."""
    return _digest(path, "sha256")


def matches_hash(path: str | os.PathLike[str], expected: str) -> bool:
    """Whether the file hashes to ``expected``: SHA-256 if it has 64 hex digits, else MD5.

    Keras publishes MD5 hashes for most application weights; this is its ``"auto"`` rule.
    """
    algorithm = "sha256" if len(expected) == 64 else "md5"
    return _digest(path, algorithm) == expected.lower()


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
        download(keras_download(file_name, origin, file_hash))
    except Failed as exc:
        raise _not_fetched(target, origin, purpose, exc.reason) from exc
    return target


def keras_download(file_name: str, origin: str, file_hash: str | None = None) -> Download:
    """The declaration of a file Keras keeps in its cache: ``keras_cache() / file_name``.

    ``file_hash`` is read as Keras reads it: SHA-256 if it has 64 hex digits, else MD5.
    """
    digest = file_hash.lower() if file_hash else None
    sha, md5 = (digest, None) if digest and len(digest) == 64 else (None, digest)
    return Download(file_name, origin, keras_cache() / file_name, sha256=sha, md5=md5)


def _not_fetched(target: Path, origin: str, purpose: str, reason: str) -> ZooError:
    return ZooError(
        f"Could not download {purpose} ({target.name}): {reason}.",
        expected=f"{target.name} in the Keras cache, {target.parent}",
        fix=f"on a machine with internet access, download {origin} and copy it into "
        f"{target.parent}/ (or point KERAS_HOME at a folder whose models/ holds it; "
        "zoo fetch NAME --to DIR and zoo fetch --from DIR carry it for you); or pass "
        "a local copy with --set backbone.weights=PATH; or start from random weights with "
        "--set backbone.weights=none",
    )


def _digest(path: str | os.PathLike[str], algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()
