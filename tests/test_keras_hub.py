"""The keras_hub plugin: KerasHub presets as backbones, tested offline.

The presets are tiny ones the session writes with ``save_to_preset`` (a ResNet, a ViT
and a CLIP, each with its image converter: ``tiny_presets``), loaded from their
directories, or by a real preset's name from a KerasHub cache laid out as kagglehub
fills it. HTTP(S) goes to a closed local port, so a preset that is not in the cache
fails as it does on a machine without internet.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    TINY_RUN,
    TWO_DEVICES,
    TinyPresets,
    corrupt,
    fill_kerashub_cache,
    offline_env,
    run_zoo,
    truncate,
)

import zoo
import zoo.testing

pytest.importorskip("keras_hub", reason="needs keras-hub: pip install 'zoo[hub]'")

REGISTRY = zoo.load_registry(zoo.LoadOptions(builtins_only=True))
PLUGIN = importlib.import_module("zoo.builtins.keras_hub")
#: Where zoo counts the image model it builds, not what KerasHub's table counts: timm's
#: count with the classifier (EfficientNet), both encoders (CLIP, SigLIP).
OWN_COUNTS = {"hub_efficientnet_b0", "hub_clip_base16", "hub_siglip_base16"}


def build(backbone: str, image_size: int, head: str = "gap_sigmoid", **params: str):
    """``backbone`` + ``head`` resolved and built as ``zoo run`` does; ``head.X`` sets the head."""
    sets = [f"{k}={v}" if k.startswith("head.") else f"backbone.{k}={v}" for k, v in params.items()]
    resolved = zoo.resolve_run(
        REGISTRY, ["shapes", backbone, head], settings={"image_size": image_size}, sets=sets
    )
    return zoo.build_model(resolved, num_classes=2)


def pixels(size: int, count: int = 2) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (count, size, size, 3)).astype("float32")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> Path:
    """An empty KerasHub cache, and HTTP(S) refused; returns the cache folder."""
    cache = isolated / "kagglehub"
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(cache))
    for name, value in offline_env().items():
        monkeypatch.setenv(name, value)
    return cache


# The curated presets ---------------------------------------------------------------------


def test_the_curated_presets_cover_the_families_with_kerashubs_counts():
    import keras_hub

    presets = keras_hub.models.Backbone.presets
    families = {row.family for row in PLUGIN.CURATED}

    assert {"ResNet", "EfficientNet", "MobileNet", "ViT", "DINOv2"} <= families
    assert {"CLIP", "SigLIP"} <= families
    for row in PLUGIN.CURATED:
        assert row.preset in presets, row
        assert row.handle == presets[row.preset]["kaggle_handle"], row.name
        if row.name not in OWN_COUNTS:
            assert row.parameters == presets[row.preset]["metadata"]["params"], row.name


def test_info_shows_the_preset_its_parameters_and_native_size(zoo_cli):
    result = zoo_cli("info", "hub_dinov2_small", "--json")

    (info,) = result.json()
    params = {p["name"]: p for p in info["params"]}
    assert params["preset"]["default"] == "dinov2_small"
    assert params["trainable"]["default"] is False
    assert info["card"]["parameters"] == 22_582_656
    assert info["card"]["native_image_size"] == 518
    assert info["card"]["family"] == "DINOv2"
    assert zoo_cli("info", "hub_dinov2_small").stdout.count("native image size: 518") == 1


def test_the_generic_backbone_asks_for_a_preset(zoo_cli):
    result = zoo_cli("run", "shapes", "keras_hub", "gap_sigmoid", "--dry-run")

    assert result.exit_code == 2
    assert "--set backbone.preset=" in result.stderr


# Building from a preset directory ------------------------------------------------------


@pytest.mark.parametrize(("preset", "rank"), [("resnet", 4), ("vit", 3), ("clip", 3)])
def test_a_preset_directory_gives_a_frozen_backbone_with_its_converters_preprocessing(
    tiny_presets: TinyPresets, preset: str, rank: int
):
    import keras
    import keras_hub

    directory = getattr(tiny_presets, preset)
    assembled = build("keras_hub", tiny_presets.image_size, preset=str(directory))
    converter = keras_hub.layers.ImageConverter.from_preset(str(directory))
    converter.image_size = None  # its scale and offset only; zoo resizes the images

    images = pixels(tiny_presets.image_size)
    np.testing.assert_allclose(
        np.asarray(assembled.preprocessing(images)), np.asarray(converter(images)), atol=1e-5
    )
    assert assembled.backbone_frozen
    assert len(assembled.backbone.outputs[0].shape) == rank
    assert {type(layer) for layer in assembled.preprocessing.layers} == {keras.layers.Rescaling}


def test_a_clip_preset_gives_its_image_encoder(tiny_presets: TinyPresets):
    assembled = build("keras_hub", tiny_presets.image_size, preset=str(tiny_presets.clip))

    assert [type(layer).__name__ for layer in assembled.backbone.layers[1:]] == [
        "CLIPVisionEncoder"
    ]
    assert assembled.model.get_layer("head").get_layer("class_token")


def test_a_transformer_is_fed_its_own_size_and_a_cnn_any_size(tiny_presets: TinyPresets):
    """The ViT was built for 48x48: at 32 zoo resizes inside the model as its converter does."""
    import keras
    import keras_hub

    vit = build("keras_hub", 32, preset=str(tiny_presets.vit))
    resnet = build("keras_hub", 32, preset=str(tiny_presets.resnet))
    converter = keras_hub.layers.ImageConverter.from_preset(str(tiny_presets.vit))

    resize = vit.preprocessing.get_layer("resize_to_preset")
    assert isinstance(resize, keras.layers.Resizing) and (resize.height, resize.width) == (48, 48)
    np.testing.assert_allclose(
        np.asarray(vit.preprocessing(pixels(32))), np.asarray(converter(pixels(32))), atol=1e-4
    )
    assert np.asarray(vit.model(pixels(32))).shape == (2, 1)
    assert [layer.name for layer in resnet.preprocessing.layers] == ["scale_to_preset"]
    assert resnet.backbone.outputs[0].shape[1:3] == (None, None)


def test_the_head_pools_the_class_token_unless_told_otherwise(tiny_presets: TinyPresets):
    vit = str(tiny_presets.vit)
    size = tiny_presets.image_size

    auto = build("keras_hub", size, preset=vit).model.get_layer("head")
    mean = build("keras_hub", size, preset=vit, **{"head.token_pooling": "mean"})

    assert [layer.name for layer in auto.layers[1:]] == ["class_token_crop", "class_token", "dense"]
    assert [layer.name for layer in mean.model.get_layer("head").layers[1:]] == [
        "token_mean",
        "dense",
    ]


def test_the_plugin_keeps_zoos_contracts_on_tiny_presets(tiny_presets: TinyPresets):
    entry = REGISTRY.get("backbone", "keras_hub")

    for preset in (tiny_presets.resnet, tiny_presets.vit, tiny_presets.clip):
        report = zoo.testing.check_components(
            [entry], params={"keras_hub": {"preset": str(preset)}}, image_size=48
        )
        assert report.ok, str(report)


def test_under_mixed_precision_the_backbone_computes_in_float16(tiny_presets: TinyPresets):
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        assembled = build("keras_hub", 48, preset=str(tiny_presets.vit))
    finally:
        keras.mixed_precision.set_global_policy(previous)

    assert assembled.backbone.compute_dtype == "float16"
    assert assembled.model.outputs[0].dtype == "float32"


# By name, through the KerasHub cache ---------------------------------------------------


def test_a_preset_name_loads_from_the_cache_without_the_network(
    tiny_presets: TinyPresets, offline: Path
):
    """The cache as a download on another machine left it: hub_vit_base16 loads offline."""
    import keras_hub

    folder = fill_kerashub_cache("vit_base_patch16_224_imagenet", tiny_presets.vit)
    tiny = keras_hub.models.Backbone.from_preset(str(tiny_presets.vit))

    assembled = build("hub_vit_base16", 48)

    assert folder.is_relative_to(offline)
    assert assembled.weights_file == str(folder / "model.weights.h5")
    for loaded, written in zip(assembled.backbone.weights, tiny.weights, strict=True):
        np.testing.assert_array_equal(loaded.numpy(), written.numpy())


def test_zoo_declares_the_files_kerashub_reads_where_kagglehub_keeps_them(
    tiny_presets: TinyPresets, offline: Path, monkeypatch: pytest.MonkeyPatch
):
    """What zoo fetch would download is exactly what building the preset reads."""
    import kagglehub

    folder = fill_kerashub_cache("resnet_50_imagenet", tiny_presets.resnet)
    read = set()
    download = kagglehub.model_download

    def recorded(handle: str, path: str | None = None, **kwargs: object) -> str:
        read.add(path)
        return download(handle, path, **kwargs)

    monkeypatch.setattr(kagglehub, "model_download", recorded)
    entry = REGISTRY.get("backbone", "hub_resnet50")

    build("hub_resnet50", 32)

    declared = entry.component.downloads(entry.defaults)
    assert {d.name for d in declared} == read
    assert {d.path for d in declared} == {folder / name for name in read}


@pytest.mark.parametrize(
    ("file", "damage"), [("model.weights.h5", corrupt), ("config.json", truncate)]
)
def test_a_damaged_cached_preset_file_is_set_aside_and_offline_named(
    tiny_presets: TinyPresets, offline: Path, capsys, file: str, damage
):
    """Kaggle publishes no hashes: zoo records each file when it first meets it intact."""
    folder = fill_kerashub_cache("resnet_50_imagenet", tiny_presets.resnet)
    build("hub_resnet50", 32)  # the files' first use: recorded
    damage(folder / file)
    damaged = (folder / file).read_bytes()

    with pytest.raises(zoo.ZooError) as error:
        build("hub_resnet50", 32)

    assert f"before that, the cached {folder / file} was damaged (" in error.value.what
    assert f"moved to {folder / file}.damaged" in error.value.what
    assert "zoo fetch --from DIR" in error.value.fix
    assert (folder / f"{file}.damaged").read_bytes() == damaged
    (warning,) = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert "a file of the KerasHub preset 'resnet_50_imagenet'); downloading it again" in warning


def test_a_preset_not_in_the_cache_fails_at_once_naming_both_ways_out(isolated: Path):
    """The real ``zoo`` process with the network refused: exit 2, no download, no traceback."""
    cache = isolated / "kagglehub"
    env = {"KAGGLEHUB_CACHE": str(cache), **offline_env()}

    result = run_zoo("run", "shapes", "hub_resnet50", "gap_sigmoid", "--dry-run", env=env)

    assert result.exit_code == 2, result.stderr
    for text in (
        "the KerasHub preset 'resnet_50_imagenet' is not in the KerasHub cache",
        str(cache / "models" / "keras" / "resnetv1" / "keras" / "resnet_50_imagenet" / "3"),
        "$KAGGLEHUB_CACHE",
        "https://www.kaggle.com/models/keras/resnetv1/keras/resnet_50_imagenet/3",
        "--set backbone.preset=DIR",
        "Connection refused",  # the closed port answered: one attempt, no retries
    ):
        assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(cache.rglob("*.h5"))


@pytest.mark.parametrize(
    ("preset", "complaint"),
    [
        ("vit_base_patch16_224_imagenett", "did you mean vit_base_patch16_224_imagenet"),
        ("empty_folder", "is not a KerasHub preset directory: it has no config.json"),
        ("no_converter", "ImageConverter.save_to_preset write together"),
        ("text_model", "which has no image model"),
    ],
)
def test_a_bad_preset_is_a_clear_error(
    zoo_cli, tiny_presets: TinyPresets, isolated: Path, preset: str, complaint: str
):
    import keras_hub

    (isolated / "empty_folder").mkdir()
    shutil.copytree(tiny_presets.resnet, isolated / "no_converter")
    (isolated / "no_converter" / "image_converter.json").unlink()
    keras_hub.models.BertBackbone(
        vocabulary_size=8, num_layers=1, num_heads=1, hidden_dim=4, intermediate_dim=4,
        max_sequence_length=4,
    ).save_to_preset(isolated / "text_model")  # fmt: skip

    result = zoo_cli(
        "run", "shapes", "keras_hub", "gap_sigmoid", "--dry-run", "--image-size", "48",
        "--set", f"backbone.preset={preset}",
    )  # fmt: skip

    assert result.exit_code == 2, result.stderr
    assert complaint in result.stderr


def test_a_backbone_only_preset_names_both_save_calls_and_the_fix_works(
    tiny_presets: TinyPresets, isolated: Path
):
    """What the README's comment led a user to write: ``Backbone.save_to_preset`` alone."""
    import keras_hub

    mine = isolated / "my_preset"
    keras_hub.models.Backbone.from_preset(str(tiny_presets.resnet)).save_to_preset(mine)
    command = ("run", "shapes", "keras_hub", "gap_sigmoid", "--dry-run", "--image-size", "48",
               "--set", f"backbone.preset={mine}")  # fmt: skip

    refused = run_zoo(*command)

    said = " ".join(refused.stderr.split())
    assert refused.exit_code == 2, refused.stderr
    assert f"the preset directory {mine} has no image_converter.json" in said
    assert "Backbone.save_to_preset" in said and f"converter.save_to_preset('{mine}')" in said
    # The fix, as the message words it: the converter saved into the same directory.
    keras_hub.layers.ImageConverter.from_preset(str(tiny_presets.resnet)).save_to_preset(mine)
    assert run_zoo(*command).exit_code == 0


def test_a_damaged_preset_directory_is_a_clear_error(tiny_presets: TinyPresets, isolated: Path):
    damaged = shutil.copytree(tiny_presets.vit, isolated / "damaged")
    weights = damaged / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])

    result = run_zoo(
        "run", "shapes", "keras_hub", "gap_sigmoid", "--dry-run",
        "--set", f"backbone.preset={damaged}",
    )  # fmt: skip

    assert result.exit_code == 2, result.stderr
    assert f"the preset directory {damaged} does not load" in result.stderr
    assert "save_to_preset" in result.stderr and "Traceback" not in result.stderr


# Training ------------------------------------------------------------------------------


def test_a_run_predicts_and_exports_in_new_processes(tiny_presets: TinyPresets, isolated: Path):
    """zoo run, then zoo predict and zoo export in processes of their own."""
    from PIL import Image

    trained = run_zoo(
        "run", "shapes", "keras_hub", "gap_sigmoid", *TINY_RUN, "--json",
        "--set", f"backbone.preset={tiny_presets.vit}",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.stderr
    run_dir = isolated / trained.json()["run_dir"]
    Image.new("RGB", (40, 30), (200, 30, 30)).save(isolated / "red.png")

    predicted = run_zoo("predict", str(run_dir), str(isolated / "red.png"), "--json")
    saved = run_zoo("export", str(run_dir), "--format", "savedmodel", "--output", "served")
    kept = run_zoo("export", str(run_dir), "--format", "keras", "--output", "model.keras")

    assert predicted.exit_code == 0, predicted.stderr
    [prediction] = predicted.json()["predictions"]
    assert prediction["file"] == str(isolated / "red.png") or prediction["file"].endswith("red.png")
    assert prediction["class"] in {"circle", "square"}
    assert saved.exit_code == 0 and (isolated / "served" / "saved_model.pb").is_file()
    assert kept.exit_code == 0, kept.stderr
    # zoo says, and writes into the file, that Keras needs keras-hub to load it ...
    assert "loads with: keras, tensorflow, keras-hub installed" in kept.stdout
    manifest = json.loads(zipfile.ZipFile(isolated / "model.keras").read("zoo.json"))
    assert manifest["requires"] == ["keras-hub"]
    plain_keras = "import keras, sys; keras.saving.load_model(sys.argv[1]).summary()"
    without_hub = "import sys; sys.modules['keras_hub'] = None; " + plain_keras

    def load(program: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", program, str(isolated / "model.keras")]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    loaded = load(plain_keras)
    assert loaded.returncode == 0, loaded.stderr  # plain Keras: no zoo class inside
    # ... and it does: where keras-hub cannot be imported, plain Keras fails.
    assert load(without_hub).returncode != 0


def test_features_are_cached_and_fine_tuning_keeps_batch_norm_frozen(
    zoo_cli, tiny_presets: TinyPresets, isolated: Path
):
    import keras

    base = [
        "run", "shapes", "keras_hub", "gap_sigmoid", *TINY_RUN, "--json",
        "--set", f"backbone.preset={tiny_presets.resnet}",
    ]  # fmt: skip
    first = zoo_cli(*base, "--output", "first").json()
    tuned = zoo_cli(
        *base, "--fine-tune-layers", "6", "--fine-tune-epochs", "1", "--fine-tune-lr", "0.01",
        "--keep", "last",  # the fine-tuned weights, whichever epoch validated best
    ).json()  # fmt: skip

    assert {split["source"] for split in first["feature_cache"].values()} == {"extracted"}
    assert {split["source"] for split in tuned["feature_cache"].values()} == {"cache"}
    assert tuned["fine_tune_layers"] and all(
        name.endswith("_conv") for name in tuned["fine_tune_layers"]
    )  # the top six layers hold batch norms too, kept frozen
    before, after = (
        {w.path: w.numpy() for w in keras.models.load_model(path).layers[2].weights}
        for path in (isolated / run["run_dir"] / "model.keras" for run in (first, tuned))
    )
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    # The unfrozen convolutions learnt; no batch norm moved, not even its statistics.
    assert changed == {f"{name}/kernel" for name in tuned["fine_tune_layers"]}


def test_mirrored_training_on_two_devices(tiny_presets: TinyPresets, isolated: Path):
    script = isolated / "two_devices.py"
    script.write_text(TWO_DEVICES)

    proc = subprocess.run(
        [
            sys.executable, str(script), "run", "shapes", "keras_hub", "gap_sigmoid",
            *TINY_RUN, "--json", "--strategy", "mirrored", "--no-feature-cache",
            "--set", f"backbone.preset={tiny_presets.vit}",
        ],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    assert "2 replicas in sync" in proc.stderr
    assert json.loads(proc.stdout)["status"] == "completed"
