"""Weights files: hashes, the Keras cache, and fetching pretrained weights safely.

For plugin authors whose backbones load weights files. Cheap to import: nothing here
imports Keras.

:func:`fetch` differs from ``keras.utils.get_file`` in three ways that matter offline:
a cached file is checked before use (:mod:`zoo.downloads.records`: its size, and a hash only when
it changed since zoo recorded it) and a damaged one is moved aside to ``NAME.damaged``,
never deleted (Keras deletes a cached file whose hash does not match when the
re-download fails, so a user's copy is lost); a download lands under a temporary name
and is moved into place only when complete and verified (:mod:`zoo.downloads.transfer`, the code
``zoo fetch`` uses); and a failure is a :class:`zoo.ZooError` that says which file to
put where. :func:`set_aside_if_damaged` is the check, for plugins whose library reads
its own cache (KerasHub's presets).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from zoo import console
from zoo.downloads import records
from zoo.downloads.transfer import Failed, download
from zoo.errors import ZooError
from zoo.storage.caches import keras_cache, keras_home
from zoo.storage.declared import Download, confined
from zoo.storage.hashing import file_hashes

__all__ = [
    "SetAside",
    "fetch",
    "keras_cache",
    "keras_download",
    "keras_home",
    "matches_hash",
    "set_aside",
    "set_aside_if_damaged",
    "sha256",
]


@dataclass(frozen=True)
class SetAside:
    """A damaged cached file zoo moved aside: where it was, where it is, what was wrong."""

    path: Path
    aside: Path
    problem: str

    def __str__(self) -> str:
        return f"the cached {self.path} was damaged ({self.problem}) and moved to {self.aside}"

    @staticmethod
    def before(moved: SetAside | None) -> str:
        """`` Before that, <moved>.`` to end an error's first sentence; '' when none was."""
        return f" Before that, {moved}." if moved else ""


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
            not match is moved aside to ``NAME.damaged`` (with a warning, never deleted)
            and downloaded again.
        purpose: What the file is, for messages, e.g. "the ImageNet weights of
            backbone 'resnet50'".

    Raises:
        ZooError: the file is not cached (or was damaged) and cannot be downloaded
            (offline, a bad hash, no space); the message names the file, the folder,
            the URL and, when one was moved aside, where it went.
    """
    d = keras_download(file_name, origin, file_hash)
    damaged = set_aside_if_damaged(d, purpose)
    if d.path.is_file():
        return d.path
    try:
        download(d)
    except Failed as exc:
        raise _not_fetched(d.path, origin, purpose, exc.reason, damaged) from exc
    return d.path


def set_aside_if_damaged(
    d: Download, purpose: str, *, thorough: bool = False, then: str = "downloading it again"
) -> SetAside | None:
    """Check ``d``'s cached file before use; move a damaged one aside, with one warning.

    Intact is the declared size and hashes, or what zoo recorded when it stored the
    file (:mod:`zoo.downloads.records`); a missing file is no damage.

    Args:
        d: The declared file.
        purpose: What it is, for the warning ("the ImageNet weights of backbone 'vgg16'").
        thorough: Hash the file even when ``stat`` agrees with zoo's record.
        then: What happens next, for the warning.

    Returns:
        What was moved aside, or None when the file is intact or missing.

    Raises:
        ZooError: the file or its marker leads outside ``d.root``
            (:func:`zoo.storage.declared.confined`).
    """
    confined(d, purpose)
    problem = records.damage(d, thorough=thorough)
    return None if problem is None else set_aside(d, purpose, problem, then)


def set_aside(d: Download, purpose: str, problem: str, then: str) -> SetAside:
    """Move ``d``'s cached file aside as damaged by ``problem``, with one warning line."""
    moved = SetAside(d.path, records.set_aside(d), problem)
    console.warning(f"{moved} ({purpose}); {then}")
    return moved


def keras_download(file_name: str, origin: str, file_hash: str | None = None) -> Download:
    """The declaration of a file Keras keeps in its cache: ``keras_cache() / file_name``.

    ``file_hash`` is read as Keras reads it: SHA-256 if it has 64 hex digits, else MD5.
    """
    digest = file_hash.lower() if file_hash else None
    sha, md5 = (digest, None) if digest and len(digest) == 64 else (None, digest)
    root = keras_cache()
    return Download(file_name, origin, root / file_name, sha256=sha, md5=md5, root=root)


def _not_fetched(
    target: Path, origin: str, purpose: str, reason: str, damaged: SetAside | None
) -> ZooError:
    before = SetAside.before(damaged)
    yours = (
        f" (to use {damaged.aside} anyway, rename it to {target.name} in another folder "
        "and pass that)"
        if damaged
        else ""
    )
    return ZooError(
        f"Could not download {purpose} ({target.name}): {reason}.{before}",
        expected=f"{target.name} in the Keras cache, {target.parent}",
        fix="on a machine with internet access, write a bundle with zoo fetch NAME --to DIR "
        f"and install it here with zoo fetch --from DIR (or download {origin} and copy it "
        f"into {target.parent}/, or point KERAS_HOME at a folder whose models/ holds it); "
        f"or pass a local copy with --set backbone.weights=PATH{yours}; or train from scratch: "
        "a backbone made for it (small_cnn), or this one whole (--set backbone.weights=none "
        "--set backbone.trainable=true; frozen, random weights leave the head at chance)",
    )


def _digest(path: str | os.PathLike[str], algorithm: str) -> str:
    return file_hashes(path, algorithm)[algorithm]
