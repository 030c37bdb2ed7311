"""A run directory is someone else's data: its values choose which data, this machine
chooses where files are written.

A run is trained by one process, then its config.json is tampered with as a run copied
from someone else could be: its dataset becomes ``cats_vs_dogs`` with a TFDS data
directory (where TFDS prepares the dataset) at a sentinel folder. ``zoo evaluate`` and
``zoo run --resume`` in new processes must refuse it, exit 2, before anything is
written outside the run directory and this machine's caches. HOME is the test's own, so
the default caches are too; HTTP(S) goes to a closed port, so nothing downloads.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import TINY_RUN, offline_env, run_zoo

import zoo

ARCHIVE = "kagglecatsanddogs_5340.zip"
ARCHIVE_SIZE = 824_887_076  # TFDS's checksums table; a sparse file of it costs no disk


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished shapes run, trained by an earlier process."""
    root = tmp_path_factory.mktemp("trained")
    command = ["run", "shapes", "small_cnn", "gap_sigmoid", *TINY_RUN, "--json"]
    result = run_zoo(*command, cwd=root, env=home(root))
    assert result.exit_code == 0, result.stderr
    return root / json.loads(result.stdout)["run_dir"]


def home(root: Path) -> dict[str, str | None]:
    """HOME in ``root``, every cache at its default there, and no network."""
    unset = ("ZOO_CACHE_DIR", "XDG_CACHE_HOME", "KERAS_HOME", "TFDS_DATA_DIR", "KAGGLEHUB_CACHE")
    return {"HOME": str(root / "home"), **dict.fromkeys(unset), **offline_env()}


@pytest.fixture
def place(trained: Path, isolated: Path) -> Path:
    """The test's copy of the run, a sentinel folder beside it, and an empty HOME."""
    (isolated / "home").mkdir()
    (isolated / "sentinel").mkdir()
    (isolated / "sentinel" / "keep.txt").write_text("untouched\n")
    shutil.copytree(trained, isolated / "run")
    return isolated / "run"


def tamper(run_dir: Path, **params: str | None) -> None:
    """Make the run's dataset cats_vs_dogs with ``params``, as a hostile run would."""
    config = json.loads((run_dir / "config.json").read_text())
    values = {"data_dir": None, "manual_dir": None, **params}
    config["dataset"] = {
        "kind": "dataset",
        "name": "cats_vs_dogs",
        "plugin": "tfds_datasets",
        "params": values,
    }
    (run_dir / "config.json").write_text(json.dumps(config))


def resumable(run_dir: Path) -> None:
    """Make the finished run one that was interrupted after its first epoch of two."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, "status": "running"}))
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "epochs": 2}))


def outside(root: Path, run_dir: Path) -> set[Path]:
    """Everything under ``root`` but the run directory and this machine's caches."""
    caches = [
        root / "home" / ".cache",
        root / "home" / ".keras",
        root / "home" / "tensorflow_datasets",
    ]
    return {
        path
        for path in root.rglob("*")
        if not any(path.is_relative_to(p) for p in (run_dir, *caches))
    }


def sparse_archive(folder: Path) -> Path:
    """An archive of the right size (so it counts as present), all zeros."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ARCHIVE, "wb") as file:
        file.truncate(ARCHIVE_SIZE)
    return folder / ARCHIVE


COMMANDS = {
    "evaluate": lambda run_dir: ["evaluate", str(run_dir)],
    "resume": lambda run_dir: ["run", "--resume", str(run_dir)],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("with_archive", [False, True], ids=["downloading", "archive_read"])
def test_a_recorded_data_dir_outside_the_caches_is_refused_before_anything_is_written(
    place: Path, isolated: Path, command: str, with_archive: bool
):
    """Without the check TFDS made sentinel/cats_vs_dogs and sentinel/downloads (and,
    with the real archive, would have prepared the whole dataset there)."""
    sentinel = isolated / "sentinel"
    manual = None
    if with_archive:  # read from a folder of the run's: allowed, it is only read
        manual = str(sparse_archive(isolated / "archives").parent)
    tamper(place, data_dir=str(sentinel), manual_dir=manual)
    if command == "resume":
        resumable(place)
    before = outside(isolated, place)

    result = run_zoo(*COMMANDS[command](place), cwd=isolated, env=home(isolated))

    assert sorted(p.name for p in sentinel.iterdir()) == ["keep.txt"], result.stderr
    assert outside(isolated, place) == before
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert f"{place / 'config.json'} records dataset.data_dir='{sentinel}'" in message
    assert "outside this machine's caches; zoo writes nothing there" in message
    assert "remove dataset.data_dir from the dataset's params in" in message
    assert f"TFDS_DATA_DIR={sentinel}" in message  # the fix for a folder one trusts


def test_a_recorded_manual_dir_is_only_read_and_not_refused(place: Path, isolated: Path):
    """The archive's folder is read where it is; TFDS prepares into this machine's cache
    (and here refuses the all-zero archive by its checksum)."""
    archive = sparse_archive(isolated / "archives")
    tamper(place, manual_dir=str(archive.parent))

    result = run_zoo("evaluate", str(place), cwd=isolated, env=home(isolated))

    assert result.exit_code == 2
    assert "is not the one TFDS expects (wrong checksum)" in result.stderr
    assert "outside this machine's caches" not in result.stderr
    assert sorted(p.name for p in archive.parent.iterdir()) == [ARCHIVE]


def test_a_data_dir_this_machine_trusts_is_not_refused(place: Path, isolated: Path):
    """The same folder as this machine's TFDS cache (the variable is set here) is used."""
    sentinel = isolated / "sentinel"
    tamper(place, data_dir=str(sentinel))
    env = {**home(isolated), "TFDS_DATA_DIR": str(sentinel)}

    result = run_zoo("evaluate", str(place), cwd=isolated, env=env)

    assert result.exit_code == 2  # offline: TFDS cannot download the archive
    assert "could not download" in result.stderr
    assert "outside this machine's caches" not in result.stderr


def test_a_tfds_data_dir_is_held_even_when_the_archive_is_read_from_a_cache(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    """Any TFDS dataset declares the folder it is prepared in, so a recorded data
    directory is checked even when its files are read from the manual directory."""
    from zoo.downloads import readiness
    from zoo.storage import caches

    monkeypatch.setenv("TFDS_DATA_DIR", str(isolated / "tfds"))
    registry = zoo.load_registry(zoo.LoadOptions(builtins_only=True))
    entry = registry.get("dataset", "tfds")
    manual = caches.tfds_data_dir() / "downloads" / "manual"
    values = {"name": "tf_flowers", "data_dir": None, "manual_dir": str(manual)}
    (archive,) = readiness.needs(readiness.Target(entry, values)).downloads
    manual.mkdir(parents=True)
    with open(archive.path, "wb") as file:  # present, so it is only read
        file.truncate(archive.size or 0)
    source = isolated / "run" / "config.json"

    readiness.recorded(readiness.Target(entry, values), source)  # this machine's folders
    with pytest.raises(zoo.ZooError, match=r"records dataset\.data_dir=") as raised:
        readiness.recorded(readiness.Target(entry, {**values, "data_dir": "/elsewhere"}), source)

    assert raised.value.got == "/elsewhere"
    assert os.path.exists(manual / archive.name)


def test_a_recorded_data_dir_where_the_data_is_prepared_already_is_only_read(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    """A run of one's own, trained with --set dataset.data_dir=DIR: resuming or evaluating
    it reads the prepared dataset there, and writes nothing."""
    from zoo.downloads import readiness
    from zoo.storage import caches

    monkeypatch.setenv("TFDS_DATA_DIR", str(isolated / "tfds"))
    registry = zoo.load_registry(zoo.LoadOptions(builtins_only=True))
    entry = registry.get("dataset", "tfds")
    manual = caches.tfds_data_dir() / "downloads" / "manual"
    values = {
        "name": "tf_flowers",
        "data_dir": str(isolated / "scratch"),
        "manual_dir": str(manual),
    }
    (archive,) = readiness.needs(readiness.Target(entry, values)).downloads
    manual.mkdir(parents=True)
    with open(archive.path, "wb") as file:  # present, so it is only read
        file.truncate(archive.size or 0)
    source = isolated / "run" / "config.json"
    with pytest.raises(zoo.ZooError, match=r"records dataset\.data_dir="):
        readiness.recorded(readiness.Target(entry, values), source)  # it would be prepared there

    assert archive.prepared is not None
    archive.prepared.mkdir(parents=True)  # prepared there when the run trained

    readiness.recorded(readiness.Target(entry, values), source)


# Links inside the run directory ------------------------------------------------------------


def test_resume_refuses_a_run_whose_folders_link_outside_it(place: Path, isolated: Path):
    """Without the check the resumed run wrote its best epoch into the sentinel folder
    and removed the sentinel's subfolders, as it removes older best epochs (exit 0)."""
    sentinel = isolated / "sentinel"
    (sentinel / "photos").mkdir()
    (sentinel / "photos" / "cat.jpg").write_bytes(b"a photo")
    shutil.rmtree(place / "best")
    (place / "best").symlink_to(sentinel)
    resumable(place)
    before = outside(isolated, place)

    result = run_zoo("run", "--resume", str(place), cwd=isolated, env=home(isolated))

    assert outside(isolated, place) == before, result.stderr
    assert (sentinel / "photos" / "cat.jpg").read_bytes() == b"a photo"
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert f"the run {place} holds symbolic links that lead outside it (best -> {sentinel})" in (
        message
    )
    assert "replace each link by a copy of what it points at" in message


def test_evaluate_refuses_a_figure_that_links_outside_the_run(place: Path, isolated: Path):
    """Without the check the confusion matrix replaced the file the link named (exit 0)."""
    kept = isolated / "sentinel" / "keep.txt"
    (place / "confusion_matrix-test.png").symlink_to(kept)

    result = run_zoo("evaluate", str(place), cwd=isolated, env=home(isolated))

    assert kept.read_text() == "untouched\n", result.stderr
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "the confusion matrix figure would be written to" in message
    assert f"remove the link {place / 'confusion_matrix-test.png'}" in message
