"""Paths built from outside input stay inside their folder: nothing outside is written.

A bundle is someone else's data: its values (a KerasHub preset handle, TFDS's
``data_dir`` and ``manual_dir``, a dataset name, any plugin's parameter) decide where
``zoo fetch --from`` writes on this machine. Each test gives zoo a hostile value in a
home folder of its own (``HOME``, the caches under it) beside a file that must come
through untouched (``~/.docker/config.json``, or one named as the file zoo would write),
and lists every file under the test's folder before and after: zoo refuses with exit 2
naming the value, and writes nothing anywhere. Each has a twin that installs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
from pathlib import Path

import pytest
from helpers import offline_env, run_zoo

import zoo
from zoo.downloads import weights

zoo.load_registry(zoo.LoadOptions(builtins_only=True))  # imports zoo.builtins.*
TFDS = importlib.import_module("zoo.builtins.tfds_datasets")
#: The Kaggle archive as TFDS's checksums table records it (name, size, SHA-256).
(ARCHIVE,) = TFDS.cats_vs_dogs_downloads({"data_dir": None, "manual_dir": None})
SENTINEL = b'{"auths": {"registry.example": {"auth": "c2VjcmV0"}}}\n'
PRESET_FILES = ("config.json", "model.weights.h5", "image_converter.json")
LEGIT = "kaggle://keras/resnetv1/keras/resnet_50_imagenet/3"
#: Handles that would put files elsewhere than the preset's folder in kagglehub's cache.
HOSTILE = {
    "dotdot": "kaggle://../../../.docker/.",  # the report: replaced ~/.docker/config.json
    "dotdot-in-variation": "kaggle://keras/resnetv1/keras/../3",
    "absolute": "kaggle:///resnetv1/keras/resnet_50_imagenet/3",
    "backslash": "kaggle://keras/resnetv1/keras/..\\..\\..\\..\\.docker/3",
    "nul": "kaggle://keras/resnetv1/keras/resnet\x00/3",
}


@pytest.fixture
def home(isolated: Path) -> Path:
    """A home folder with a ``~/.docker/config.json``, its caches inside it."""
    home = isolated / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_bytes(SENTINEL)
    (home / ".keras").mkdir()  # Keras writes its keras.json when missing, on import
    (home / ".keras" / "keras.json").write_text('{"backend": "tensorflow"}', encoding="utf-8")
    return home


def environment(home: Path) -> dict[str, str]:
    return {
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "KAGGLEHUB_CACHE": str(home / ".cache" / "kagglehub"),
        "KERAS_HOME": str(home / ".keras"),
        **offline_env(),
    }


def listing(folder: Path) -> dict[str, bytes | str]:
    """Every path under ``folder``, with a file's bytes or a link's target."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[name] = path.read_bytes()
        else:
            found[name] = "folder"
    return found


def write_bundle(folder: Path, handle: str) -> Path:
    """A bundle as ``zoo fetch --to`` writes one, for ``handle``, its checksums matching."""
    files = {name: SENTINEL[::-1] + name.encode() for name in PRESET_FILES}  # the attacker's
    return bundle_of(folder, "backbone", "keras_hub:keras_hub", {"preset": handle}, files)


def bundle_of(
    folder: Path,
    kind: str,
    qualified_name: str,
    params: dict[str, str],
    files: dict[str, bytes],
    recorded: dict[str, tuple[int, str]] | None = None,
) -> Path:
    """A bundle of one component with ``files``, recorded with their own sizes and
    SHA-256, or those ``recorded`` gives (a file's as published)."""
    records = []
    for name, data in files.items():
        write_bytes(folder / "files" / name, data)
        size, sha256 = (recorded or {}).get(name, (len(data), hashlib.sha256(data).hexdigest()))
        records.append({"name": name, "file": f"files/{name}", "bytes": size, "sha256": sha256})
    component = {
        "kind": kind,
        "name": qualified_name.partition(":")[2],
        "qualified_name": qualified_name,
        "params": params,
        "files": records,
    }
    manifest = {"format": "zoo-bundle", "version": 1, "components": [component]}
    (folder / "zoo-bundle.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_legit_bundle_installs_into_the_kagglehub_cache(isolated: Path, home: Path):
    """The twin of the hostile cases: the same bundle with a real handle installs."""
    bundle = write_bundle(isolated / "bundle", LEGIT)

    result = run_zoo("fetch", "--from", str(bundle), "--json", env=environment(home))

    assert result.exit_code == 0, result.stderr
    cache = home / ".cache" / "kagglehub" / "models" / "keras" / "resnetv1" / "keras"
    assert [Path(row["path"]).parent for row in result.json()] == [
        cache / "resnet_50_imagenet" / "3"
    ] * 3


@pytest.mark.parametrize("handle", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_bundle_whose_handle_leads_out_of_the_cache_is_refused(
    isolated: Path, home: Path, handle: str
):
    bundle = write_bundle(isolated / "bundle", handle)
    before = listing(isolated)

    result = run_zoo("fetch", "--from", str(bundle), env=environment(home))

    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert repr(handle) in result.stderr  # Got: the handle
    assert str(home / ".cache" / "kagglehub") in result.stderr  # the folder to stay in
    assert (home / ".docker" / "config.json").read_bytes() == SENTINEL
    assert listing(isolated) == before


def test_a_link_inside_the_cache_leading_out_is_not_followed(isolated: Path, home: Path):
    """A legit handle, but the cache's keras/ folder is a link to a folder outside."""
    outside = isolated / "outside"
    outside.mkdir()
    models = home / ".cache" / "kagglehub" / "models"
    models.mkdir(parents=True)
    (models / "keras").symlink_to(outside)
    bundle = write_bundle(isolated / "bundle", LEGIT)
    before = listing(isolated)

    result = run_zoo("fetch", "--from", str(bundle), env=environment(home))

    assert result.exit_code == 2, result.stderr
    assert f"it resolves to {outside}" in result.stderr
    assert str(models.resolve()) in result.stderr
    assert listing(isolated) == before


@pytest.mark.parametrize("command", ["fetch", "bundle", "run"])
def test_a_hostile_handle_given_on_the_command_line_writes_nothing(
    isolated: Path, home: Path, command: str
):
    """Fetching, bundling or building it would record (or copy) ~/.docker/config.json."""
    handle = HOSTILE["dotdot"]
    preset = f"backbone.preset={handle}"
    args = {
        "fetch": ["fetch", "keras_hub", "--set", preset],
        "bundle": ["fetch", "keras_hub", "--set", preset, "--to", str(isolated / "out")],
        "run": ["run", "shapes", "keras_hub", "gap_sigmoid", "--set", preset, "--dry-run"],
    }[command]
    before = listing(isolated)

    result = run_zoo(*args, env=environment(home))

    assert result.exit_code == 2, result.stderr
    assert repr(handle) in result.stderr
    assert listing(isolated) == before


def test_a_weights_file_name_leading_out_of_the_keras_cache_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("KERAS_HOME", str(home / ".keras"))
    name = "../../.docker/config.json"

    with pytest.raises(zoo.ZooError) as raised:
        weights.fetch(name, "http://127.0.0.1:9/none", "0" * 32)

    assert "leads outside" in raised.value.what
    assert (home / ".docker" / "config.json").read_bytes() == SENTINEL
    assert not list((home / ".docker").iterdir())[1:]  # config.json alone, no .damaged


# TFDS folders in a bundle ----------------------------------------------------------------

#: Folder values a bundle's cats_vs_dogs may carry, and where each puts the archive
#: (``HOME`` stands for the test's home folder).
FOLDERS = {
    "data_dir": ({"data_dir": "HOME/.ssh"}, ".ssh/downloads/manual"),
    "manual_dir": ({"manual_dir": "HOME/.ssh"}, ".ssh"),
    "manual_dir-tilde": ({"manual_dir": "~/.ssh"}, ".ssh"),
    "manual_dir-relative": ({"manual_dir": "home/.ssh"}, ".ssh"),  # from the working folder
    "both": ({"data_dir": "HOME/.ssh", "manual_dir": "HOME/.ssh/keys"}, ".ssh/keys"),
}


def tfds_environment(home: Path) -> dict[str, str]:
    return {**environment(home), "TFDS_DATA_DIR": str(home / "tensorflow_datasets")}


def write_tfds_bundle(folder: Path, params: dict[str, str]) -> Path:
    """A bundle whose cats_vs_dogs has ``params``, recording the archive as TFDS publishes it
    (the attacker's file would fail its check only after the archive's place is chosen)."""
    published = {ARCHIVE.name: (ARCHIVE.size, ARCHIVE.sha256)}
    files = {ARCHIVE.name: SENTINEL[::-1]}
    return bundle_of(folder, "dataset", "tfds_datasets:cats_vs_dogs", params, files, published)


@pytest.mark.parametrize(("given", "where"), FOLDERS.values(), ids=FOLDERS.keys())
def test_a_bundle_whose_tfds_folders_lead_out_of_the_caches_is_refused(
    isolated: Path, home: Path, given: dict[str, str], where: str
):
    """The archive would have gone where the bundle said, moving a file of its name aside."""
    params = {name: value.replace("HOME", str(home)) for name, value in given.items()}
    sentinel = write_bytes(home / where / ARCHIVE.name, SENTINEL)
    bundle = write_tfds_bundle(isolated / "bundle", params)
    before = listing(isolated)

    result = run_zoo("fetch", "--from", str(bundle), cwd=isolated, env=tfds_environment(home))

    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    named = "manual_dir" if "manual_dir" in params else "data_dir"
    assert f"dataset.{named}={params[named]!r}" in result.stderr  # the parameter, its value
    assert "dataset tfds_datasets:cats_vs_dogs" in result.stderr  # the component
    assert str(home / "tensorflow_datasets" / "downloads" / "manual") in result.stderr
    assert f"without --set dataset.{named}" in result.stderr  # the fix
    assert sentinel.read_bytes() == SENTINEL
    assert listing(isolated) == before


def test_a_bundle_naming_a_tfds_table_of_its_own_is_refused(isolated: Path, home: Path):
    """``tfds``'s name was a path to the checksums table: the bundle's own table named
    authorized_keys and vouched for the attacker's copy, which replaced ~/.ssh's (exit 0)."""
    evil = SENTINEL[::-1]
    table = isolated / "bundle" / "evil" / "checksums.tsv"
    row = ["https://example.invalid/k", str(len(evil)), hashlib.sha256(evil).hexdigest()]
    write_bytes(table, "\t".join([*row, "authorized_keys"]).encode())
    tables = Path(importlib.util.find_spec("tensorflow_datasets").origin).parent / "datasets"
    name = os.path.relpath(table.parent, tables)
    sentinel = write_bytes(home / ".ssh" / "authorized_keys", SENTINEL)
    params = {"name": name, "manual_dir": "~/.ssh"}
    files = {"authorized_keys": evil}
    bundle = bundle_of(isolated / "bundle", "dataset", "tfds_datasets:tfds", params, files)
    before = listing(isolated)

    result = run_zoo("fetch", "--from", str(bundle), cwd=isolated, env=tfds_environment(home))

    assert result.exit_code == 2, result.stderr
    assert f"the TFDS dataset name '{name}'" in result.stderr
    assert sentinel.read_bytes() == SENTINEL
    assert listing(isolated) == before


# The legitimate flows, with a small archive standing for TFDS's (file:// URL) ------------


@pytest.fixture
def small_archive(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """TFDS's table for cats_vs_dogs names a small file on this machine."""
    data = b"PK\x03\x04 a small archive standing for the real one"
    published = write_bytes(isolated / "published" / ARCHIVE.name, data)
    row = (published.as_uri(), len(data), hashlib.sha256(data).hexdigest(), ARCHIVE.name)
    tables = importlib.import_module("zoo.builtins.tfds_files")  # where the table is read
    monkeypatch.setattr(tables, "_checksums", lambda name: [row])
    return data


def test_a_tfds_bundle_with_default_folders_installs_on_another_machine(
    zoo_cli, small_archive: bytes, isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TFDS_DATA_DIR", str(isolated / "a"))
    assert zoo_cli("fetch", "cats_vs_dogs", "--to", "bundle").exit_code == 0
    monkeypatch.setenv("TFDS_DATA_DIR", str(isolated / "b"))

    result = zoo_cli("fetch", "--from", "bundle", "--json")

    assert result.exit_code == 0, result.stderr
    assert [row["status"] for row in result.json()] == ["installed"]
    assert (isolated / "b" / "downloads" / "manual" / ARCHIVE.name).read_bytes() == small_archive


def test_a_bundles_data_dir_installs_only_where_this_machine_keeps_tfds_data(
    zoo_cli, small_archive: bytes, isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    """Refused while this machine's TFDS data is elsewhere; fine once $TFDS_DATA_DIR names it."""
    shared = isolated / "shared"
    bundled = zoo_cli("fetch", "cats_vs_dogs", "--set", f"dataset.data_dir={shared}", "--to", "b")
    assert bundled.exit_code == 0, bundled.stderr
    monkeypatch.setenv("TFDS_DATA_DIR", str(isolated / "elsewhere"))

    refused = zoo_cli("fetch", "--from", "b")
    monkeypatch.setenv("TFDS_DATA_DIR", str(shared))
    installed = zoo_cli("fetch", "--from", "b")

    assert refused.exit_code == 2
    assert f"dataset.data_dir='{shared}'" in refused.stderr
    assert installed.exit_code == 0, installed.stderr
    assert (shared / "downloads" / "manual" / ARCHIVE.name).read_bytes() == small_archive


def test_a_folder_typed_on_the_command_line_is_trusted(
    zoo_cli, small_archive: bytes, isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TFDS_DATA_DIR", str(isolated / "tfds"))
    mine = isolated / "mine"

    result = zoo_cli("fetch", "cats_vs_dogs", "--set", f"dataset.manual_dir={mine}")

    assert result.exit_code == 0, result.stderr
    assert (mine / ARCHIVE.name).read_bytes() == small_archive


SHELF_PLUGIN = """
import os
from pathlib import Path

import zoo


def declare(params):
    folder = Path(os.environ["SHELF_CACHE"]) / params["variant"]
    return [zoo.Download("w.bin", "https://example.invalid/w.bin", folder / "w.bin")]


@zoo.hookimpl
def register_backbones(register):
    register(zoo.Backbone(
        name="shelf", description="A plugin's own cache, a subfolder per variant, no root",
        params=[zoo.Param("variant", str, "v1", "which subfolder")],
        build=lambda image_shape, params: None, downloads=declare,
    ))
"""


def shelf_bundle(isolated: Path, home: Path, variant: str) -> tuple[Path, dict[str, str]]:
    """A bundle for the shelf plugin's backbone with ``variant``, and the environment."""
    write_bytes(isolated / "shelf.py", SHELF_PLUGIN.encode())
    write_bytes(isolated / "registry.toml", b'[plugins]\nload = ["shelf.py"]\n')
    params = {"variant": variant}
    bundle = bundle_of(isolated / "b", "backbone", "shelf:shelf", params, {"w.bin": b"x"})
    return bundle, {**environment(home), "SHELF_CACHE": str(isolated / "shelf")}


def test_a_plugins_own_folder_takes_a_bundle_for_it(isolated: Path, home: Path):
    bundle, env = shelf_bundle(isolated, home, "v1")

    result = run_zoo("fetch", "--from", str(bundle), cwd=isolated, env=env)

    assert result.exit_code == 0, result.stderr
    assert (isolated / "shelf" / "v1" / "w.bin").read_bytes() == b"x"


def test_any_plugins_folder_value_from_a_bundle_is_held_to_the_same_rule(
    isolated: Path, home: Path
):
    """A third-party plugin that declares no root: its files stay in its own folder."""
    sentinel = write_bytes(home / ".ssh" / "w.bin", SENTINEL)
    bundle, env = shelf_bundle(isolated, home, "../home/.ssh")
    before = listing(isolated)

    result = run_zoo("fetch", "--from", str(bundle), cwd=isolated, env=env)

    assert result.exit_code == 2, result.stderr
    assert "backbone.variant='../home/.ssh'" in result.stderr
    assert str(isolated / "shelf" / "v1") in result.stderr
    assert sentinel.read_bytes() == SENTINEL
    assert listing(isolated) == before
