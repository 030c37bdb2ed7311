"""A file's digests (SHA-256, MD5...), read once in blocks, whatever its size."""

from __future__ import annotations

import hashlib
import os

#: Bytes read at a time: large enough that the hash, not the reads, sets the pace.
BLOCK = 1 << 20


def file_hashes(path: str | os.PathLike[str], *algorithms: str) -> dict[str, str]:
    """The hex digest of the file at ``path`` by each of ``algorithms``, in one read."""
    hashers = {name: hashlib.new(name, usedforsecurity=False) for name in algorithms}
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            for hasher in hashers.values():
                hasher.update(block)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file at ``path``, in hex."""
    return file_hashes(path, "sha256")["sha256"]
