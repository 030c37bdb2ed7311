"""Files and folders written whole (zoo.storage.atomic); a file's digests (zoo.storage.hashing)."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from zoo.storage import atomic
from zoo.storage.hashing import BLOCK, file_hashes, file_sha256


def test_write_bytes_replaces_the_file_and_leaves_nothing_beside_it(tmp_path: Path):
    path = tmp_path / "metrics.json"
    path.write_bytes(b"old")

    atomic.write_bytes(path, b"new")

    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_what_is_written_whole_gets_the_modes_a_plain_open_and_mkdir_give(tmp_path: Path):
    """Not mkstemp's 0600 nor mkdtemp's 0700: a run shared with a group stays so."""
    umask = os.umask(0o022)
    os.umask(umask)

    atomic.write_bytes(tmp_path / "figure.png", b"png")
    with atomic.staged(tmp_path / "epoch-0001", folder=True) as new:
        (new / "state.json").write_text("{}")

    assert (tmp_path / "figure.png").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "epoch-0001").stat().st_mode & 0o777 == 0o777 & ~umask


def test_a_failed_write_leaves_the_old_file_whole_and_no_part_of_the_new(tmp_path: Path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"the old model")

    with pytest.raises(OSError, match="No space"), atomic.staged(path) as new:
        new.write_bytes(b"half of the n")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(new))

    assert path.read_bytes() == b"the old model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_without_replace_an_existing_target_stays_as_it_is(tmp_path: Path):
    path = tmp_path / "weights.bin"

    with pytest.raises(FileExistsError), atomic.staged(path, replace=False) as new:
        new.write_bytes(b"downloaded")
        path.write_bytes(b"the user's copy")  # appeared while zoo wrote

    assert path.read_bytes() == b"the user's copy"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]


def test_a_folder_replaces_the_folder_of_its_name_whole(tmp_path: Path):
    final = tmp_path / "epoch-0002"
    final.mkdir()
    (final / "stale.npz").write_bytes(b"stale")

    with atomic.staged(final, folder=True) as new:
        (new / "variables").mkdir()
        (new / "variables" / "data").write_bytes(b"weights")
        (new / "state.json").write_text("{}")

    assert sorted(str(p.relative_to(final)) for p in final.rglob("*")) == [
        "state.json",
        "variables",
        "variables/data",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0002"]


def test_data_is_synced_before_its_name_and_the_name_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The one fsync policy: a crash leaves the old name or the new one with its data."""
    events: list[str] = []
    fsync, replace = os.fsync, os.replace

    def name(path: str | Path) -> str:
        return "the temporary" if Path(path).name.startswith(".") else Path(path).name

    def recorded_fsync(fd: int) -> None:
        synced = Path(os.readlink(f"/proc/self/fd/{fd}"))
        events.append(f"sync {'folder' if synced.is_dir() else 'file'} {name(synced)}")
        fsync(fd)

    def recorded_replace(source: str, target: str) -> None:
        events.append(f"rename {name(source)} to {name(target)}")
        replace(source, target)

    monkeypatch.setattr(os, "fsync", recorded_fsync)
    monkeypatch.setattr(os, "replace", recorded_replace)
    folder = tmp_path / "runs"
    folder.mkdir()

    atomic.write_bytes(folder / "config.json", b"{}")

    assert events == [
        "sync file the temporary",
        "rename the temporary to config.json",
        "sync folder runs",
    ]


def test_file_hashes_reads_once_for_every_algorithm(tmp_path: Path):
    data = os.urandom(BLOCK * 2 + 123)  # more than one block, and a short last one
    path = tmp_path / "weights.h5"
    path.write_bytes(data)

    found = file_hashes(path, "sha256", "md5")

    assert found == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
    }
    assert file_sha256(path) == found["sha256"]
