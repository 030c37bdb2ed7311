"""Paths built from outside input stay inside their folder: nothing outside is written.

A bundle is someone else's data: its values (a KerasHub preset handle) decide where
``zoo fetch --from`` writes on this machine. Each test gives zoo a hostile value in a
home folder of its own (``HOME``, the caches under it) beside a ``~/.docker/config.json``
that must come through untouched, and lists every file under the test's folder before
and after: zoo refuses with exit 2 naming the value, and writes nothing anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from helpers import offline_env, run_zoo

import zoo
from zoo import weights

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
    files = []
    for name in PRESET_FILES:
        data = SENTINEL[::-1] + name.encode()  # the attacker's "config.json"
        (folder / "files").mkdir(parents=True, exist_ok=True)
        (folder / "files" / name).write_bytes(data)
        sha256 = hashlib.sha256(data).hexdigest()
        files.append({"name": name, "file": f"files/{name}", "bytes": len(data), "sha256": sha256})
    component = {
        "kind": "backbone",
        "name": "keras_hub",
        "qualified_name": "keras_hub:keras_hub",
        "params": {"preset": handle},
        "files": files,
    }
    manifest = {"format": "zoo-bundle", "version": 1, "components": [component]}
    (folder / "zoo-bundle.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


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
