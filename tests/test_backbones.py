"""Backbones: every registered one builds and runs; the Keras family's preprocessing,
minimum sizes, parameter counts and weights (ImageNet offline, cached files, paths).

Nothing here downloads: ``offline`` points ``KERAS_HOME`` at an empty folder and sends
HTTP(S) to a closed local port, so the real download code fails at once, as it does on
a machine without internet. The one real download is marked ``network``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import corrupt, offline_env, run_zoo, truncate, unreachable_proxy

import zoo
from zoo.downloads import records, weights

REGISTRY = zoo.load_registry(zoo.LoadOptions(builtins_only=True))
APPS = {
    app.name: app for app in importlib.import_module("zoo.builtins.keras_applications").APPLICATIONS
}
#: KerasHub presets need a download; tests/test_keras_hub.py builds them from tiny presets.
BACKBONES = [e.name for e in REGISTRY.entries("backbone") if e.plugin.name != "keras_hub"]
RESNET50 = APPS["resnet50"]
RESNET50_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + RESNET50.weights_file
)
#: The tutorial's dataset; its class names are known without loading any data.
DATASET = "cats_vs_dogs"


def build(backbone: str, image_size: int, **params: str) -> zoo.Assembled:
    """``backbone`` + ``gap_sigmoid``, resolved and built as ``zoo run`` does."""
    resolved = zoo.resolve_run(
        REGISTRY,
        ["shapes", backbone, "gap_sigmoid"],
        settings={"image_size": image_size},
        sets=[f"backbone.{key}={value}" for key, value in params.items()],
    )
    return zoo.build_model(resolved, num_classes=2)


def randomise(model) -> list[np.ndarray]:
    """Give every weight new random values (unlike any initialiser); return them."""
    rng = np.random.default_rng(7)
    for weight in model.weights:
        weight.assign(rng.normal(size=weight.shape).astype(weight.dtype))
    return [w.numpy() for w in model.weights]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> Path:
    """An empty Keras home, and HTTP(S) in this process refused: returns the cache folder."""
    monkeypatch.setenv("KERAS_HOME", str(isolated / "keras_home"))
    proxy = unreachable_proxy()
    handler = urllib.request.ProxyHandler({"http": proxy, "https": proxy})
    # urlopen (under keras.utils.get_file) uses the opener install_opener sets.
    monkeypatch.setattr(urllib.request, "_opener", urllib.request.build_opener(handler))
    return isolated / "keras_home" / "models"


# Every backbone ------------------------------------------------------------------------


@pytest.mark.parametrize("name", BACKBONES)
def test_every_registered_backbone_runs_a_forward_pass(name: str):
    entry = REGISTRY.get("backbone", name)
    size = entry.component.min_image_size
    random_weights = {"weights": "none"} if entry.component.param("weights") else {}

    assembled = build(name, size, **random_weights)
    pixels = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
    out = np.asarray(assembled.model(pixels))

    assert out.shape == (1, 1) and np.isfinite(out).all()
    assert assembled.weights_file is None
    assert assembled.backbone.count_params() == entry.component.parameters  # its card says so
    if name in APPS:  # the Keras family: its own preprocessing first, frozen by default
        assert assembled.model.layers[1].name == f"preprocess_{APPS[name].preprocessing}"
        assert assembled.backbone_frozen


# The Keras family ------------------------------------------------------------------------


def test_the_family_has_the_tutorials_backbones_and_the_common_ones():
    required = {"resnet50", "densenet121", "inception_v3", "mobilenet_v2", "efficientnet_b0"}
    required |= {"resnet101", "vgg16", "xception"}

    assert required <= set(APPS) <= set(BACKBONES)


@pytest.mark.parametrize("app", APPS.values(), ids=APPS)
def test_preprocessing_is_kerass_preprocess_input(app):
    import keras

    from zoo.model.layers import preprocessing_layer

    pixels = np.random.default_rng(1).uniform(0, 255, (2, 5, 5, 3)).astype("float32")
    expected = getattr(keras.applications, app.module).preprocess_input(pixels.copy())

    got = np.asarray(preprocessing_layer(app.preprocessing)(pixels))

    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("app", APPS.values(), ids=APPS)
def test_minimum_image_size_is_the_one_keras_enforces(app):
    import keras

    too_small = (app.min_size - 1, app.min_size - 1, 3)
    constructor = getattr(keras.applications, app.constructor)

    assert REGISTRY.get("backbone", app.name).component.min_image_size == app.min_size
    with pytest.raises(ValueError, match=f"at least {app.min_size}"):
        constructor(include_top=False, weights=None, input_shape=too_small)


def test_info_says_what_resnet50_loads_and_expects(zoo_cli):
    result = zoo_cli("info", "resnet50", "--json")

    (info,) = result.json()
    params = {p["name"]: p for p in info["params"]}
    assert info["min_image_size"] == 32
    assert "the tutorial's" in info["description"] and "caffe" in info["description"]
    assert params["weights"]["default"] == "imagenet"
    assert RESNET50.weights_file in params["weights"]["help"]
    assert params["trainable"]["default"] is False


def test_an_image_below_the_minimum_fails_before_anything_is_built(zoo_cli):
    result = zoo_cli("run", "shapes", "inception_v3", "gap_sigmoid", "--image-size", "74")

    assert result.exit_code == 2
    assert "needs images of at least 75x75" in result.stderr
    assert "--image-size 75" in result.stderr


@pytest.mark.parametrize(
    ("backbone", "sets", "total", "trainable"),
    [
        ("resnet50", ["--set", "backbone.weights=none"], 23_589_761, 2_049),
        ("small_cnn", [], 28_705, 28_705),
    ],
)
def test_dry_run_prints_the_tutorials_parameter_counts(zoo_cli, backbone, sets, total, trainable):
    result = zoo_cli("run", DATASET, backbone, "gap_sigmoid", "--dry-run", "--json", *sets)

    assert result.exit_code == 0, result.stderr
    assert result.json()["parameters"] == {
        "total": total,
        "trainable": trainable,
        "non_trainable": total - trainable,
    }
    assert f"Total params: {total:,}" in result.stderr
    assert f"Trainable params: {trainable:,}" in result.stderr
    assert f"Non-trainable params: {total - trainable:,}" in result.stderr


@pytest.mark.parametrize(("backbone", "total"), [("resnet50", 23_589_761), ("small_cnn", 28_705)])
def test_parameter_counts_agree_with_kerass_own_summary(backbone, total):
    model = build(backbone, 100, **({"weights": "none"} if backbone in APPS else {})).model
    lines: list[str] = []

    model.summary(print_fn=lambda line, **_: lines.append(line))

    assert model.count_params() == total
    assert any(f"Total params: {total:,}" in line for line in lines), lines


def test_trainable_unfreezes_the_whole_backbone(zoo_cli):
    result = zoo_cli(
        "run", "shapes", "vgg16", "gap_sigmoid", "--dry-run", "--json", "--image-size", "32",
        "--set", "backbone.weights=none", "--set", "backbone.trainable=true",
    )  # fmt: skip

    counts = result.json()["parameters"]
    assert counts["trainable"] == counts["total"] == 14_714_688 + 513


# Weights ---------------------------------------------------------------------------------


def test_offline_imagenet_weights_say_which_file_to_put_where(isolated: Path):
    """The real ``zoo`` process, with the network refused: exit 2 and a recipe to fix it."""
    home = isolated / "keras_home"
    env = {"KERAS_HOME": str(home), **offline_env()}

    result = run_zoo("run", DATASET, "resnet50", "gap_sigmoid", "--dry-run", env=env)

    assert result.exit_code == 2, result.stderr
    for text in (
        f"Could not download the ImageNet weights of backbone 'resnet50' ({RESNET50.weights_file})",
        str(home / "models"),
        RESNET50_URL,
        "--set backbone.weights=PATH",
        "zoo fetch NAME --to DIR",
        "zoo fetch --from DIR",
        "Connection refused",  # the proxy, not the internet, answered
    ):
        assert text in result.stderr
    # Frozen random weights leave the head at chance: random weights come only unfrozen.
    said = " ".join(result.stderr.split())
    assert said.count("backbone.weights=none") == 1
    assert "--set backbone.weights=none --set backbone.trainable=true" in said
    assert "Traceback" not in result.stderr
    assert list((home / "models").glob("*")) == []  # no partial download left behind


@pytest.mark.parametrize("app", APPS.values(), ids=APPS)
def test_every_family_member_asks_zoo_for_its_imagenet_file(
    app, offline: Path, monkeypatch: pytest.MonkeyPatch
):
    """What Keras asks for (name, URL, MD5) is what the backbone declares for zoo fetch."""
    entry = REGISTRY.get("backbone", app.name)
    declared = entry.component.downloads(entry.defaults)
    asked = []
    keras_download = weights.keras_download

    def record(*request: str | None) -> zoo.Download:
        asked.append(keras_download(*request))
        return asked[-1]

    monkeypatch.setattr(weights, "keras_download", record)

    with pytest.raises(zoo.ZooError) as error:
        build(app.name, app.min_size)

    assert f"({app.weights_file}): " in error.value.what
    assert "Connection refused" in error.value.what  # the proxy answered, not the internet
    assert str(offline) in error.value.expected
    assert asked == declared


def test_a_cached_file_with_another_hash_is_set_aside_never_deleted(
    offline: Path, isolated: Path, capsys
):
    """Keras would re-download it and, offline, delete it; zoo moves it aside, says where,
    and the user can still load it as a path."""
    import h5py
    import keras
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    app = APPS["efficientnet_b0"]
    mine = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    written = randomise(mine)
    cached = offline / app.weights_file
    cached.parent.mkdir(parents=True)
    with h5py.File(cached, "w") as f:  # the layout of Keras's ImageNet files
        save_weights_to_hdf5_group(f, mine)
    digest = weights.sha256(cached)

    with pytest.raises(zoo.ZooError) as error:
        build(app.name, 32)

    aside = offline / f"{app.weights_file}.damaged"
    assert f"Before that, the cached {cached} was damaged (its MD5 is " in error.value.what
    assert f"and moved to {aside}." in error.value.what
    assert f"rename it to {app.weights_file} in another folder" in error.value.fix
    assert weights.sha256(aside) == digest and not cached.exists()
    (warning,) = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warning.endswith("; downloading it again")
    (isolated / "mine").mkdir()
    kept = aside.rename(isolated / "mine" / app.weights_file)
    loaded = build(app.name, 32, weights=str(kept)).backbone
    for expected, got in zip(written, loaded.weights, strict=True):
        np.testing.assert_array_equal(got.numpy(), expected)


def test_a_damaged_cached_file_is_set_aside_and_offline_exit_2_says_so(zoo_cli, offline: Path):
    cached = offline / APPS["vgg16"].weights_file
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a download")

    result = zoo_cli("run", "shapes", "vgg16", "gap_sigmoid", "--dry-run", "--image-size", "32")

    assert result.exit_code == 2
    said = " ".join(result.stderr.split())
    assert "Could not download the ImageNet weights of backbone 'vgg16'" in said
    assert f"moved to {cached}.damaged" in said and "zoo fetch --from DIR" in said
    assert Path(f"{cached}.damaged").read_bytes() == b"half a download"


def test_weights_from_a_path_load_exactly(isolated: Path):
    source = build("vgg16", 32, weights="none").backbone
    written = randomise(source)
    path = isolated / "mine.weights.h5"
    source.save_weights(path)

    assembled = build("vgg16", 32, weights=str(path))

    assert assembled.weights_file == str(path)
    for expected, loaded in zip(written, assembled.backbone.weights, strict=True):
        np.testing.assert_array_equal(loaded.numpy(), expected)


# Keras warns about each layer it cannot fill before zoo reports the mismatch.
@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_weights_that_do_not_fit_the_backbone_are_a_clear_error(zoo_cli, isolated: Path):
    path = isolated / "vgg16.weights.h5"
    build("vgg16", 32, weights="none").backbone.save_weights(path)

    result = zoo_cli(
        "run", "shapes", "vgg19", "gap_sigmoid", "--dry-run", "--image-size", "32",
        "--set", f"backbone.weights={path}",
    )  # fmt: skip

    assert result.exit_code == 2
    assert f"vgg19: the weights in {path} do not load into VGG19" in result.stderr
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in result.stderr


@pytest.mark.parametrize(
    ("file_name", "problem"),
    [("missing.weights.h5", "is not a file"), ("notes.txt", "is not a Keras weights file")],
)
def test_a_bad_weights_path_is_a_clear_error(zoo_cli, isolated: Path, file_name, problem):
    (isolated / "notes.txt").write_text("not weights")

    result = zoo_cli(
        "run", "shapes", "resnet50", "gap_sigmoid", "--dry-run",
        "--set", f"backbone.weights={file_name}",
    )  # fmt: skip

    assert result.exit_code == 2
    assert problem in result.stderr and "--set backbone.weights=imagenet" in result.stderr


# zoo.downloads.weights ------------------------------------------------------------------------


def test_hashes_of_a_file(isolated: Path):
    path = isolated / "abc.bin"
    path.write_bytes(b"abc")

    assert weights.sha256(path) == hashlib.sha256(b"abc").hexdigest()
    assert weights.matches_hash(path, hashlib.md5(b"abc").hexdigest())
    assert weights.matches_hash(path, hashlib.sha256(b"abc").hexdigest())
    assert not weights.matches_hash(path, hashlib.md5(b"abd").hexdigest())


def test_the_keras_cache_follows_keras_home(monkeypatch: pytest.MonkeyPatch, isolated: Path):
    monkeypatch.setenv("KERAS_HOME", str(isolated / "kh"))
    assert weights.keras_cache() == isolated / "kh" / "models"

    monkeypatch.delenv("KERAS_HOME")
    assert weights.keras_cache().parent.name == ".keras"


def test_fetch_uses_a_cached_file_and_hashes_it_once(
    offline: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    """The first use hashes the file and records it; later uses compare ``stat`` alone."""
    cached = offline / "w.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    md5 = hashlib.md5(b"weights").hexdigest()

    got = weights.fetch("w.h5", "https://example.invalid/w.h5", md5)
    monkeypatch.setattr(records, "file_hashes", None)  # a second hash would fail
    monkeypatch.setattr(weights, "file_hashes", None)
    again = weights.fetch("w.h5", "https://example.invalid/w.h5", md5)

    assert got == again == cached
    assert capsys.readouterr().err == ""
    assert records.recorded(cached).sha256 == hashlib.sha256(b"weights").hexdigest()


def test_fetch_downloads_into_the_cache_under_a_temporary_name(offline: Path, isolated: Path):
    """A ``file://`` origin runs the real download path without a network."""
    origin_file = isolated / "published.bin"
    origin_file.write_bytes(b"weights")

    got = weights.fetch(
        "w.h5", origin_file.as_uri(), hashlib.md5(b"weights").hexdigest(), purpose="test weights"
    )

    assert got == offline / "w.h5" and got.read_bytes() == b"weights"
    assert sorted(p.name for p in offline.iterdir()) == [".w.h5.zoo.json", "w.h5"]


DAMAGE = {
    "truncated": truncate,
    "garbled": corrupt,
    "missing": Path.unlink,
    "record garbled": lambda path: records.sidecar(path).write_text("{"),
    "record missing": lambda path: records.sidecar(path).unlink(),
}


@pytest.mark.parametrize("published", [True, False], ids=["md5", "no-hash"])
@pytest.mark.parametrize("damage", DAMAGE)
def test_fetch_heals_a_damaged_cached_file(
    offline: Path, isolated: Path, capsys, damage: str, published: bool
):
    """Damage to the file is set aside and downloaded again; damage to zoo's record only
    costs a hash. Without a published hash, the SHA-256 recorded at download tells."""
    origin = isolated / "published.bin"
    origin.write_bytes(b"the weights, as published" * 40)
    md5 = hashlib.md5(origin.read_bytes()).hexdigest() if published else None
    cached = weights.fetch("w.h5", origin.as_uri(), md5)
    DAMAGE[damage](cached)
    capsys.readouterr()

    assert weights.fetch("w.h5", origin.as_uri(), md5) == cached

    assert cached.read_bytes() == origin.read_bytes()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    if damage in ("truncated", "garbled"):
        (warning,) = warnings
        assert f"warning: the cached {cached} was damaged (" in warning
        assert Path(f"{cached}.damaged").exists()
    else:
        assert warnings == [] and not Path(f"{cached}.damaged").exists()
    assert records.recorded(cached).sha256 == hashlib.sha256(origin.read_bytes()).hexdigest()


def test_fetch_keeps_nothing_when_the_download_has_the_wrong_hash(offline: Path, isolated: Path):
    origin_file = isolated / "published.bin"
    origin_file.write_bytes(b"tampered")

    with pytest.raises(zoo.ZooError, match="Could not download test weights"):
        weights.fetch(
            "w.h5",
            origin_file.as_uri(),
            hashlib.md5(b"weights").hexdigest(),
            purpose="test weights",
        )

    assert list(offline.iterdir()) == []


@pytest.mark.network
@pytest.mark.skipif(os.environ.get("ZOO_NETWORK_TESTS") != "1", reason="needs the internet")
def test_imagenet_weights_download_and_load(monkeypatch: pytest.MonkeyPatch, isolated: Path):
    """The online twin of the offline tests: a real download into an empty Keras home."""
    monkeypatch.setenv("KERAS_HOME", str(isolated / "keras_home"))

    assembled = build("resnet50", 32)

    cached = isolated / "keras_home" / "models" / RESNET50.weights_file
    assert assembled.weights_file == str(cached)
    assert weights.matches_hash(cached, "4d473c1dd8becc155b73f8504c6f6626")
