"""``zoo fetch``, bundles and readiness, against a local HTTP server.

A test plugin (``helpers.mirror_plugin``) declares files of a server in this process:
one as published, one with other bytes, one shorter, one the server breaks off, one it
does not have, and one published without size or hash. The real download code fetches
them; the built-in plugins' declarations are tested with files the tests write where
their caches keep them.
"""

from __future__ import annotations

import errno
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import (
    Served,
    closed_port,
    corrupt,
    http_server,
    mirror_plugin,
    offline_env,
    run_zoo,
    truncate,
    write,
)

import zoo
import zoo.testing
from zoo.downloads import records
from zoo.plugins import LoadOptions, load_registry
from zoo.storage import caches

GOOD = bytes(range(256)) * 12  # 3,072 bytes
PLAIN = b"published without a size or a hash\n" * 10
SERVED = {
    "good.bin": Served(GOOD),
    "bad.bin": Served(GOOD[::-1]),
    "short.bin": Served(GOOD[:1000]),
    "cut.bin": Served(GOOD[:1000], announced=len(GOOD)),
    "plain.bin": Served(PLAIN),
}
SHA = hashlib.sha256(GOOD).hexdigest()
PUBLISHED = {name: (len(GOOD), SHA) for name in ("good.bin", "bad.bin", "short.bin", "cut.bin")}
PUBLISHED |= {"gone.bin": (len(GOOD), SHA), "plain.bin": (None, None)}


@dataclass(frozen=True)
class Mirror:
    """The server's base URL, and the cache the plugin's files go to."""

    base: str
    cache: Path

    def files(self) -> list[str]:
        """Everything in the cache, hidden files too (a partial download would be one)."""
        return sorted(str(p.relative_to(self.cache)) for p in self.cache.rglob("*") if p.is_file())


@pytest.fixture
def mirror(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    with http_server(SERVED) as base:
        write(isolated / "mirror.py", mirror_plugin(base, PUBLISHED))
        write(isolated / "registry.toml", '[plugins]\nload = ["mirror.py"]\n')
        monkeypatch.setenv("MIRROR_CACHE", str(isolated / "cache"))
        yield Mirror(base, isolated / "cache")


def offline_status(result, name: str) -> dict:
    (entry,) = [e for e in result.json() if e["name"] == name]
    return entry["offline"]


# Downloads -------------------------------------------------------------------------------


def test_a_download_lands_in_its_cache_checked_and_marked(zoo_cli, mirror: Mirror):
    result = zoo_cli("fetch", "mirrored", "--json")

    assert result.exit_code == 0, result.stderr
    (row,) = result.json()
    assert row["status"] == "fetched" and row["sha256"] == SHA and row["bytes"] == len(GOOD)
    assert (mirror.cache / "good.bin").read_bytes() == GOOD
    # zoo's record of what it stored, and no .part file left
    assert mirror.files() == [".done/good.bin", ".good.bin.zoo.json", "good.bin"]
    assert "downloading good.bin: 3.1 kB" in result.stderr


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        ("bad.bin", f"its SHA-256 is {hashlib.sha256(GOOD[::-1]).hexdigest()}; the one published"),
        ("short.bin", "the server offers 1,000 bytes; short.bin has 3,072"),
        ("cut.bin", "the connection closed after 1,000 of 3,072 bytes"),
        ("gone.bin", "HTTP 404 Not Found"),
    ],
)
def test_a_bad_download_is_a_clear_error_and_leaves_nothing(zoo_cli, mirror: Mirror, file, reason):
    result = zoo_cli("fetch", "mirrored", "--set", f"backbone.file={file}")

    assert result.exit_code == 2
    assert f"error: could not download {file} for backbone mirror:mirrored: {reason}" in (
        " ".join(result.stderr.split())
    )
    for part in (f"expected: {mirror.base}/{file} (3,072 bytes, sha256:{SHA})", "fix:", "got:"):
        assert part in result.stderr
    assert "Traceback" not in result.stderr
    assert mirror.files() == []


def test_a_file_without_published_checks_is_checked_against_the_announced_length(
    zoo_cli, mirror: Mirror
):
    result = zoo_cli("fetch", "mirrored", "--set", "backbone.file=plain.bin", "--json")

    assert result.exit_code == 0, result.stderr
    assert result.json()[0]["sha256"] == hashlib.sha256(PLAIN).hexdigest()
    assert (mirror.cache / "plain.bin").read_bytes() == PLAIN


def test_dry_run_lists_what_is_missing_and_what_is_present(zoo_cli, mirror: Mirror):
    write(mirror.cache / ".done" / "good.bin", "")
    (mirror.cache / "good.bin").write_bytes(GOOD)

    result = zoo_cli("fetch", "pair", "--dry-run", "--json")

    assert result.exit_code == 0, result.stderr
    assert {r["file"]: r["status"] for r in result.json()} == {
        "good.bin": "present",
        "plain.bin": "missing",
    }
    assert mirror.files() == [".done/good.bin", "good.bin"]


DAMAGE = {"truncated": truncate, "garbled": corrupt}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize(
    ("file", "found"),
    [
        ("good.bin", "its SHA-256 is {sha}; the one published is " + SHA),
        (
            "plain.bin",
            "its SHA-256 is {sha}; zoo stored one with " + hashlib.sha256(PLAIN).hexdigest(),
        ),
    ],
    ids=["published", "recorded"],
)
def test_a_damaged_cached_file_is_set_aside_and_fetched_again(
    zoo_cli, mirror: Mirror, file: str, found: str, damage: str
):
    """Checked against the published size and hash, or else the SHA-256 zoo recorded."""
    assert zoo_cli("fetch", "mirrored", "--set", f"backbone.file={file}").exit_code == 0
    cached = mirror.cache / file
    good = cached.read_bytes()
    DAMAGE[damage](cached)
    damaged = cached.read_bytes()

    result = zoo_cli("fetch", "mirrored", "--set", f"backbone.file={file}", "--json")

    assert result.exit_code == 0, result.stderr
    assert result.json()[0]["status"] == "fetched"
    assert cached.read_bytes() == good
    assert (mirror.cache / f"{file}.damaged").read_bytes() == damaged  # kept, never deleted
    (warning,) = [line for line in result.stderr.splitlines() if "warning" in line]
    reason = (
        f"it has {len(damaged):,} bytes; "
        + (f"good.bin has {len(good):,}" if file == "good.bin" else f"zoo stored {len(good):,}")
        if damage == "truncated"
        else found.format(sha=hashlib.sha256(damaged).hexdigest())
    )
    assert f"warning: the cached {cached} was damaged ({reason}) and moved to {cached}.damaged" in (
        warning
    )


@pytest.mark.parametrize("lost", ["the file", "zoo's record", "the marker"])
def test_a_missing_file_or_record_is_fetched_or_checked_again_without_a_warning(
    zoo_cli, mirror: Mirror, lost: str
):
    assert zoo_cli("fetch", "mirrored").exit_code == 0
    path = {
        "the file": "good.bin",
        "zoo's record": ".good.bin.zoo.json",
        "the marker": ".done/good.bin",
    }[lost]
    (mirror.cache / path).unlink()

    result = zoo_cli("fetch", "mirrored", "--json")

    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr
    assert result.json()[0]["status"] == ("fetched" if lost == "the file" else "present")
    assert (mirror.cache / "good.bin").read_bytes() == GOOD
    assert mirror.files() == [".done/good.bin", ".good.bin.zoo.json", "good.bin"]


def test_a_record_that_cannot_be_written_leaves_none_of_an_earlier_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """No room for zoo's record of a file: it goes unrecorded (and is hashed when used),
    and the record of an earlier file of its name goes too, not to stand for this one."""
    path = tmp_path / "weights.bin"
    path.write_bytes(b"an earlier file")
    records.record(path, hashlib.sha256(b"an earlier file").hexdigest())
    path.write_bytes(b"this one")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records, "write_json", full)
    records.record(path, hashlib.sha256(b"this one").hexdigest())

    assert records.recorded(path) is None
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]


def test_offline_a_damaged_cached_file_is_exit_2_naming_where_it_went(
    zoo_cli, mirror: Mirror, isolated: Path
):
    """Written by one process, damaged, then checked by the real zoo with the server gone."""
    assert (
        run_zoo(
            "fetch", "mirrored", cwd=isolated, env={"MIRROR_CACHE": str(mirror.cache)}
        ).exit_code
        == 0
    )
    cached = mirror.cache / "good.bin"
    truncate(cached)
    write(isolated / "mirror.py", mirror_plugin(f"http://127.0.0.1:{closed_port()}", PUBLISHED))

    result = run_zoo("fetch", "mirrored", cwd=isolated, env={"MIRROR_CACHE": str(mirror.cache)})

    assert result.exit_code == 2
    said = " ".join(result.stderr.split())
    assert (
        "error: could not download good.bin for backbone mirror:mirrored: Connection refused."
        in said
    )
    damage = "it has 1,536 bytes; good.bin has 3,072"
    assert (
        f"Before that, the cached {cached} was damaged ({damage}) and moved to {cached}.damaged"
        in (said)
    )
    assert "zoo fetch --from DIR" in said and f"put the file at {cached} yourself" in said
    assert "Traceback" not in result.stderr
    assert not cached.exists() and (mirror.cache / "good.bin.damaged").stat().st_size == 1536


def test_unknown_names_suggest_components_and_recipes(zoo_cli, mirror: Mirror):
    result = zoo_cli("fetch", "tutorial_transfr")

    assert result.exit_code == 2
    assert "no dataset, backbone, head or recipe named 'tutorial_transfr'" in result.stderr
    assert "did you mean" in result.stderr and "'tutorial_transfer'" in result.stderr


# Readiness in zoo list -------------------------------------------------------------------


def test_zoo_list_shows_readiness_from_stat_calls(zoo_cli, mirror: Mirror):
    assert offline_status(zoo_cli("list", "backbones", "--json"), "mirrored") == {
        "status": "missing",
        "ready": False,
        "files": 1,
        "missing": ["good.bin"],
        "missing_bytes": len(GOOD),
        "reason": None,
    }
    write(mirror.cache / "good.bin", "half")  # another size: not ready, whatever it holds
    write(mirror.cache / ".done" / "good.bin", "")
    assert offline_status(zoo_cli("list", "backbones", "--json"), "mirrored")["ready"] is False

    (mirror.cache / "good.bin").write_bytes(GOOD[::-1])  # the size matches: stat says ready
    listed = zoo_cli("list", "backbones")
    assert offline_status(zoo_cli("list", "backbones", "--json"), "mirrored")["ready"] is True
    assert "offline" in listed.stdout and "ready" in listed.stdout


def test_zoo_list_says_what_it_cannot_tell(zoo_cli):
    result = zoo_cli("list", "--json")

    datasets = {d["name"]: d["offline"] for d in result.json()["datasets"]}
    assert datasets["shapes"]["status"] == "ready"  # declares nothing to download
    assert datasets["tfds"]["status"] == "unknown"
    assert "needs a value for: name" in datasets["tfds"]["reason"]


def test_zoo_list_shows_whether_a_recipe_is_ready(
    zoo_cli, isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("KERAS_HOME", str(isolated / "keras"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(isolated / "tfds"))

    recipes = {r["name"]: r["offline"] for r in zoo_cli("list", "recipes", "--json").json()}

    assert recipes["shapes_scratch"]["ready"] is True
    assert recipes["tutorial_transfer"]["missing"] == [
        "kagglecatsanddogs_5340.zip",
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ]
    assert recipes["tutorial_scratch"]["missing_bytes"] == 824_887_076  # TFDS's record


# Bundles ---------------------------------------------------------------------------------


def test_a_bundle_written_on_one_machine_installs_on_another(mirror: Mirror, isolated: Path):
    """Three processes: fetch into cache A, bundle from A, install into B offline."""
    here = {"MIRROR_CACHE": str(isolated / "a")}
    assert run_zoo("fetch", "mirrored", cwd=isolated, env=here).exit_code == 0
    bundle = isolated / "bundle"

    written = run_zoo("fetch", "pair", "--to", str(bundle), "--json", cwd=isolated, env=here)

    assert written.exit_code == 0, written.stderr
    assert {r["file"]: r["status"] for r in written.json()} == {
        "good.bin": "bundled",
        "plain.bin": "bundled",
    }
    manifest = json.loads((bundle / "zoo-bundle.json").read_text())
    (component,) = manifest["components"]
    assert component["qualified_name"] == "mirror:pair"
    assert [(f["name"], f["sha256"]) for f in component["files"]] == [
        ("good.bin", SHA),
        ("plain.bin", hashlib.sha256(PLAIN).hexdigest()),
    ]
    there = {"MIRROR_CACHE": str(isolated / "b"), **offline_env()}
    before = run_zoo("list", "backbones", "--json", cwd=isolated, env=there)
    assert offline_status(before, "pair")["ready"] is False

    installed = run_zoo("fetch", "--from", str(bundle), "--json", cwd=isolated, env=there)

    assert installed.exit_code == 0, installed.stderr
    assert [r["status"] for r in installed.json()] == ["installed", "installed"]
    assert (isolated / "b" / "plain.bin").read_bytes() == PLAIN
    assert (isolated / "b" / ".done" / "plain.bin").is_file()
    after = run_zoo("list", "backbones", "--json", cwd=isolated, env=there)
    assert offline_status(after, "pair")["ready"] is True


def test_a_damaged_bundle_is_refused_and_installs_nothing_for_that_file(
    zoo_cli, mirror: Mirror, isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    bundle = isolated / "bundle"
    assert zoo_cli("fetch", "pair", "--to", str(bundle)).exit_code == 0
    manifest = json.loads((bundle / "zoo-bundle.json").read_text())
    copied = bundle / manifest["components"][0]["files"][0]["file"]
    copied.write_bytes(copied.read_bytes()[:100])  # a copy that stopped part-way
    monkeypatch.setenv("MIRROR_CACHE", str(isolated / "b"))

    result = run_zoo("fetch", "--from", str(bundle), cwd=isolated, env=offline_env())

    assert result.exit_code == 2
    assert "the bundle's copy of good.bin for backbone mirror:pair is damaged" in result.stderr
    assert "it has 100 bytes; good.bin has 3,072" in result.stderr
    assert not (isolated / "b").exists() or not any((isolated / "b").rglob("*"))


def test_a_bundle_needs_an_empty_folder_and_a_manifest(zoo_cli, mirror: Mirror, isolated: Path):
    write(isolated / "full" / "notes.txt", "mine")
    assert "is not an empty folder" in zoo_cli("fetch", "pair", "--to", "full").stderr
    assert (isolated / "full" / "notes.txt").read_text() == "mine"

    result = zoo_cli("fetch", "--from", "full")

    assert result.exit_code == 2
    assert "has no zoo-bundle.json" in result.stderr
    assert "does not exist, or is not a folder" in zoo_cli("fetch", "--from", "nowhere").stderr


# The built-in plugins' declarations ------------------------------------------------------


def test_the_caches_follow_the_variables_their_owners_read(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    import kagglehub.config
    from tensorflow_datasets.core import constants

    from zoo.train.features.cache import default_directory

    for name in ("KAGGLEHUB_CACHE", "TFDS_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert caches.kagglehub_cache() == Path(kagglehub.config.get_cache_folder())
    assert caches.tfds_data_dir() == Path(constants.get_default_data_dir())
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(isolated / "k"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(isolated / "t"))
    assert caches.kagglehub_cache() == Path(kagglehub.config.get_cache_folder())
    assert caches.tfds_data_dir() == Path(constants.get_default_data_dir())
    assert caches.zoo_cache() / "features" == default_directory()
    monkeypatch.setenv("KAGGLEHUB_CACHE", "relative")  # kagglehub takes it from the cwd
    assert caches.kagglehub_cache() == isolated / "relative"


def test_a_keras_hub_preset_travels_in_a_bundle_and_loads_offline(
    zoo_cli, tiny_presets, isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    """The curated preset's three files, as kagglehub lays them out, from cache A to B."""
    from kagglehub.cache import Cache
    from kagglehub.handle import parse_model_handle

    monkeypatch.setenv("KAGGLEHUB_CACHE", str(isolated / "a"))
    dry = zoo_cli("fetch", "hub_resnet50", "--dry-run", "--json").json()
    for row in dry:  # files as a finished kagglehub download leaves them
        Path(row["path"]).parent.mkdir(parents=True, exist_ok=True)
        Path(row["path"]).write_bytes((tiny_presets.resnet / row["file"]).read_bytes())
    handle = parse_model_handle("keras/resnetv1/keras/resnet_50_imagenet/3")
    for row in dry:
        Cache().mark_as_complete(handle, row["file"])
    assert zoo_cli("fetch", "hub_resnet50", "--to", "bundle").exit_code == 0
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(isolated / "b"))

    assert zoo_cli("fetch", "--from", "bundle").exit_code == 0
    weights = Path(next(r["path"] for r in dry if r["file"] == "model.weights.h5"))
    corrupt(Path(str(weights).replace(str(isolated / "a"), str(isolated / "b"))))
    healed = zoo_cli("fetch", "--from", "bundle", "--json")  # sets it aside, installs again
    assert [r["status"] for r in healed.json()].count("installed") == 1, healed.stderr
    assert "installing it from the bundle" in healed.stderr

    for row in dry:
        assert Cache().load_from_cache(handle, row["file"]) is not None  # kagglehub agrees
    result = run_zoo(
        "run", "shapes", "hub_resnet50", "gap_sigmoid", "--dry-run", "--image-size", "32",
        env={"KAGGLEHUB_CACHE": str(isolated / "b"), **offline_env()},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


def test_a_keras_weights_file_is_ready_by_stat_and_checked_by_fetch(
    zoo_cli, isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    """zoo list does not hash; zoo fetch compares Keras's MD5 and sets a mismatch aside."""
    monkeypatch.setenv("KERAS_HOME", str(isolated / "keras"))
    for name, value in offline_env().items():
        monkeypatch.setenv(name, value)
    (row,) = zoo_cli("fetch", "resnet50", "--dry-run", "--json").json()
    assert row["checksum"] == "md5:4d473c1dd8becc155b73f8504c6f6626"
    cached = Path(row["path"])
    write(cached, "not the weights")

    listed = zoo_cli("list", "backbones", "--json")
    fetched = zoo_cli("fetch", "resnet50")

    assert offline_status(listed, "resnet50")["ready"] is True
    assert fetched.exit_code == 2 and "its MD5 is" in fetched.stderr
    assert Path(f"{cached}.damaged").read_text() == "not the weights"
    assert not cached.exists()


# The contract ----------------------------------------------------------------------------


class Declares:
    """Backbones whose downloads declarations keep the contract, or break it."""

    @staticmethod
    @zoo.hookimpl
    def register_backbones(register):
        def fine(params):
            return [zoo.Download("w.h5", "https://example.org/w.h5", Path("/tmp/w.h5"), 3)]

        def relative(params):
            return [zoo.Download("w.h5", "ftp://example.org/w.h5", Path("w.h5"), sha256="AB")]

        def twice(params):
            return fine(params) * 2

        def online(params):
            import urllib.request

            return urllib.request.urlopen("http://example.org/list-of-files")

        def cannot_tell(params):
            raise zoo.ZooError("needs a preset it can resolve offline")

        for name, downloads in [
            ("fine", fine),
            ("relative", relative),
            ("twice", twice),
            ("online", online),
            ("cannot_tell", cannot_tell),
        ]:
            register(zoo.Backbone(name, "b", build=lambda s, p: None, downloads=downloads))


@pytest.mark.parametrize(
    ("name", "problems"),
    [
        ("fine", []),
        ("cannot_tell", []),
        (
            "relative",
            [
                "'w.h5': its url must start ('https://', 'http://', 'file://')",
                "'w.h5': its path must be an absolute pathlib.Path",
                "'w.h5': its sha256 must be None or 64 lowercase hex digits",
            ],
        ),
        ("twice", ["declares the name(s) 'w.h5' twice"]),
        ("online", ["raised URLError: <urlopen error a downloads declaration must not use"]),
    ],
)
def test_the_kit_checks_downloads_declarations(name: str, problems: list[str]):
    report = zoo.testing.check_components(
        [e for e in load_registry(LoadOptions(extra=[Declares])) if e.name == name], skip={name}
    )

    found = [p.detail for p in report.problems if p.check == "downloads"]
    assert len(found) == len(problems) and all(
        d.startswith(p) for d, p in zip(found, problems, strict=True)
    ), found


def test_a_transfer_failing_on_a_nearly_full_disk_is_the_transfers_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A timeout mid-download, on a disk with less free than the file needs, was reported
    as a full disk: the transfer's error hides its errno as a library's full disk does."""
    from zoo.downloads import transfer
    from zoo.storage import disk_full
    from zoo.storage.declared import Download

    monkeypatch.setattr(disk_full, "_free", lambda path: (1024, 100))  # 1 KB free, inodes left

    def chunks():
        yield b"x" * 100
        try:
            raise TimeoutError("timed out")
        except TimeoutError as exc:
            raise transfer.Failed("the connection timed out") from exc

    d = Download(name="big.bin", url="http://localhost/big.bin", path=tmp_path / "big.bin")
    with pytest.raises(transfer.Failed, match="timed out"):
        transfer._write(tmp_path / "big.bin", chunks(), d, None, lambda n: None)

    assert list(tmp_path.iterdir()) == []  # the partial file is gone
