"""Helpers the tests share: running the CLI, writing files, small plugin sources.

Fixtures live in ``conftest.py``; plain functions and constants live here and are
imported as ``from helpers import ...`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: Settings that make a training run take a few seconds on two CPU cores.
TINY_RUN = [
    "--epochs", "1", "--image-size", "32", "--batch-size", "8",
    "--set", "dataset.num_images=40",
    "--set", "dataset.min_size=24",
    "--set", "dataset.max_size=40",
]  # fmt: skip

#: ``zoo`` on a CPU split into two logical devices, as a machine with two GPUs looks.
TWO_DEVICES = """
import sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
from zoo.cli import main

sys.exit(main(sys.argv[1:]))
"""


def write(path: Path, text: str) -> Path:
    """Write dedented ``text`` to ``path``, creating folders; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@dataclass
class Result:
    """What a zoo command did: its exit code and its two output streams."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


def history_numbers(metrics: dict) -> list[float]:
    """Every metric of every epoch of a run's ``metrics.json``, in order."""
    return [row[key] for row in metrics["history"] for key in sorted(row) if key != "stage"]


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unreachable_proxy() -> str:
    return f"http://127.0.0.1:{closed_port()}"


def offline_env() -> dict[str, str]:
    """Environment variables that send a process's HTTP(S) to a closed local port.

    The real download code then fails at once, as it does without internet, and a test
    never downloads anything even where the internet is reachable.
    """
    proxy = unreachable_proxy()
    names = {"https_proxy": proxy, "http_proxy": proxy, "no_proxy": ""}
    return {**names, **{name.upper(): value for name, value in names.items()}}


def zoo_executable() -> str:
    """The installed ``zoo`` console script."""
    found = shutil.which("zoo", path=str(Path(sys.executable).parent)) or shutil.which("zoo")
    assert found, "the zoo console script is not installed (pip install -e .)"
    return found


def run_zoo(
    *args: str, cwd: Path | None = None, env: dict[str, str | None] | None = None
) -> Result:
    """Run the real ``zoo`` entry point in a subprocess."""
    return run_process([zoo_executable(), *args], cwd=cwd, env=env)


def run_process(
    command: list[str], cwd: Path | None = None, env: dict[str, str | None] | None = None
) -> Result:
    """Run ``command`` in this environment changed by ``env`` (``None`` unsets a name).

    Ctrl-C (SIGINT) reaches it as from a terminal, even when the tests run as a
    background job, which starts with SIGINT ignored (and children inherit that).
    """
    changed = {**os.environ, **(env or {})}
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={name: value for name, value in changed.items() if value is not None},
        timeout=600,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def hide_openvino(folder: Path) -> dict[str, str]:
    """The environment of a Python process in which OpenVINO is not installed.

    A ``sitecustomize`` in ``folder`` marks it missing in ``sys.modules``, which is
    what ``importlib.util.find_spec`` (it answers ``None``) and ``import openvino``
    (it fails) see for a package that is not there.
    """
    write(folder / "sitecustomize.py", 'import sys\n\nsys.modules["openvino"] = None\n')
    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}


TINY_BACKBONE_PLUGIN = """
import zoo

def build(image_shape, params):
    import keras
    model = keras.Sequential(
        [keras.Input(image_shape), keras.layers.Conv2D(params["filters"], 3)], name="tiny"
    )
    return zoo.BuiltBackbone(model=model, preprocessing="unit")

@zoo.hookimpl
def register_backbones(register):
    register(zoo.Backbone(
        name="{name}",
        description="A one-layer test backbone",
        params=[zoo.Param("filters", int, 4, "conv filters")],
        build=build,
        min_image_size=3,
    ))
"""


def tiny_backbone_plugin(name: str = "tiny") -> str:
    """Source of a plugin module registering a one-layer backbone called ``name``."""
    return TINY_BACKBONE_PLUGIN.replace("{name}", name)


# --- Tiny training problems for in-process tests of the loop, trainer and callbacks.


def learnable(count: int = 48, seed: int = 0) -> tuple[Any, Any]:
    """``count`` points in 4-D labelled by the sign of their first coordinate."""
    import numpy as np

    x = np.random.default_rng(seed).normal(size=(count, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def batched(x: Any, y: Any, size: int = 8) -> Any:
    """``(x, y)`` as a batched ``tf.data.Dataset``, in order."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(size)


def tiny_classifier(units: int = 1, seed: int = 0) -> Any:
    """A one-layer Keras classifier of 4-D points (sigmoid for one unit, else softmax)."""
    import keras

    keras.utils.set_random_seed(seed)
    activation = "sigmoid" if units == 1 else "softmax"
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation=activation)])


def one_device() -> Any:
    """The default strategy on this machine's CPU, as ``zoo.train.distribute`` places it."""
    from zoo.train.distribute import place

    return place("default")


def stage_plan(model: Any, epochs: int = 2, learning_rate: float = 0.05, **fields: Any) -> Any:
    """A head stage training ``model`` on :func:`learnable` data with Adam."""
    import keras

    from zoo.train.events import StagePlan

    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(model.trainable_variables)
    x, y = learnable()
    plan = {
        "stage": "head",
        "model": model,
        "optimizer": optimizer,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "train_batches": lambda epoch: batched(x, y),
        "val_batches": lambda: batched(x, y),
        "steps": 6,
        "checkpointed": model,
    }
    return StagePlan(**{**plan, **fields})


# KerasHub ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TinyPresets:
    """KerasHub preset directories written by ``save_to_preset``, each with its converter.

    ``resnet``: a two-stack ResNet (any image size, a feature map). ``vit``: a two-block
    ViT built for 48x48 (a token sequence with a class token). ``clip``: a CLIP whose
    image encoder is the backbone (a token sequence too). ``image_size``: the ViT's and
    the CLIP's own size; a run at another size resizes to it inside the model.
    """

    resnet: Path
    vit: Path
    clip: Path
    image_size: int = 48


def write_tiny_presets(folder: Path) -> TinyPresets:
    """Build tiny KerasHub models from their Backbone classes and save them as presets.

    About a second in all: a few thousand weights each, with the scale and offset of
    the real presets' converters (ImageNet mean/std for ResNet, -1..1 for ViT).
    """
    import keras_hub

    presets = TinyPresets(folder / "resnet", folder / "vit", folder / "clip")
    square = (presets.image_size, presets.image_size)
    keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 64], stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2], block_type="basic_block",
    ).save_to_preset(presets.resnet)  # fmt: skip
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's
    keras_hub.layers.ResNetImageConverter(
        image_size=(224, 224),
        scale=[1 / (255 * s) for s in std],
        offset=[-m / s for m, s in zip(mean, std, strict=True)],
    ).save_to_preset(presets.resnet)
    keras_hub.models.ViTBackbone(
        image_shape=(*square, 3), patch_size=16, num_layers=2, num_heads=2, hidden_dim=16,
        mlp_dim=32,
    ).save_to_preset(presets.vit)  # fmt: skip
    keras_hub.layers.ViTImageConverter(
        image_size=square, scale=1 / 127.5, offset=-1
    ).save_to_preset(presets.vit)
    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=16, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32,
        image_shape=(*square, 3),
    )  # fmt: skip
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=16, embedding_dim=16, hidden_dim=16, num_layers=1, num_heads=2,
        intermediate_dim=32, max_sequence_length=8,
    )  # fmt: skip
    keras_hub.models.CLIPBackbone(vision, text, projection_dim=8).save_to_preset(presets.clip)
    keras_hub.layers.CLIPImageConverter(
        image_size=square, scale=[1 / (255 * s) for s in (0.27, 0.26, 0.28)], offset=-1.0
    ).save_to_preset(presets.clip)
    return presets


def fill_kerashub_cache(preset: str, directory: Path) -> Path:
    """Put ``directory``'s files where a download of KerasHub's ``preset`` puts them.

    kagglehub's own layout under ``$KAGGLEHUB_CACHE`` (set it first), each file marked
    complete as a finished download marks it; returns the preset's cache folder.
    """
    import keras_hub
    from kagglehub.cache import Cache
    from kagglehub.handle import parse_model_handle

    handle = parse_model_handle(
        keras_hub.models.Backbone.presets[preset]["kaggle_handle"].removeprefix("kaggle://")
    )
    cache = Cache()
    folder = Path(cache.get_path(handle))
    shutil.copytree(directory, folder)
    for file in directory.iterdir():
        cache.mark_as_complete(handle, file.name)
    return folder


# --- Labelled image folders for image_folder, zoo evaluate and zoo predict.

#: Mean colours of generated classes; "lime" looks exactly like "green", so a model
#: cannot tell those two apart and always makes mistakes.
COLOURS = {
    "red": (200, 60, 50),
    "green": (60, 180, 70),
    "lime": (60, 180, 70),
    "blue": (50, 80, 200),
}
#: Formats written in turn: what TensorFlow decodes and what only Pillow does.
FORMATS = ("jpg", "png", "webp", "tiff")


def colour_folder(root: Path, counts: dict[str, int], size: int = 16, seed: int = 0) -> Path:
    """``root/<class>/<i>.<format>``: noisy images of each class's colour; return ``root``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.normal(COLOURS[name], 40, (size, size, 3))
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            image.save(folder / f"{i}.{FORMATS[i % len(FORMATS)]}")
    return root


# --- What only --verbose shows.

#: Lines the libraries zoo drives print on their own: TensorFlow's C++ logging (absl's
#: format, and its note before absl is set up), Python warnings, the absl and urllib3
#: loggers' warnings, TFDS's progress bars.
LIBRARY_NOISE = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d:\d\d"
    r"|All log messages before absl::InitializeLog"
    r"|\w+Warning: "
    r"|^WARNING:(absl|urllib3|tensorflow)"
    r"|Dl Completed|Dl Size|Generating splits",
    re.MULTILINE,
)


def library_noise(stderr: str) -> list[str]:
    """The lines of ``stderr`` that only ``--verbose`` should show."""
    return [line for line in stderr.splitlines() if LIBRARY_NOISE.search(line)]


# --- Damage, as a crash during a copy, a full disk or a stray ``truncate`` leaves it.


def truncate(path: Path) -> None:
    """Cut ``path`` to half its size."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def corrupt(path: Path) -> None:
    """Flip 16 bytes in the middle of ``path``: the same size, other bytes."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


# --- Downloads: a local HTTP server, and a plugin that declares what it serves.


@dataclass(frozen=True)
class Served:
    """A file the local server sends: its bytes, and the length it announces (default:
    theirs; more than it sends, and the server closes the connection early)."""

    body: bytes
    announced: int | None = None


@contextlib.contextmanager
def http_server(files: Mapping[str, Served]) -> Iterator[str]:
    """Serve ``files`` by name on 127.0.0.1 (404 for any other); yield the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served = files.get(self.path.lstrip("/"))
            if served is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            length = served.announced if served.announced is not None else len(served.body)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(served.body)
            self.close_connection = True

        def log_message(self, *args: Any) -> None:  # keep pytest's output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


MIRROR_PLUGIN = """
import os
from pathlib import Path

import zoo

BASE = {base!r}
#: What each file should be, as a publisher would declare it: (size, sha256).
PUBLISHED = {published!r}


def cache():
    return Path(os.environ["MIRROR_CACHE"])


def declare(name):
    size, sha256 = PUBLISHED[name]
    return zoo.Download(name, f"{{BASE}}/{{name}}", cache() / name, size, sha256,
                        marker=cache() / ".done" / name)


def build(image_shape, params):
    raise zoo.ZooError("the mirror's backbones are for fetching only")


@zoo.hookimpl
def register_backbones(register):
    register(zoo.Backbone(
        name="mirrored", description="One served file, as the file parameter names",
        params=[zoo.Param("file", str, "good.bin", "which served file it downloads")],
        build=build, downloads=lambda params: [declare(params["file"])],
    ))
    register(zoo.Backbone(
        name="pair", description="Two served files, one without published checks",
        build=build, downloads=lambda params: [declare("good.bin"), declare("plain.bin")],
    ))
"""


def mirror_plugin(base: str, published: Mapping[str, tuple[int | None, str | None]]) -> str:
    """Source of a plugin whose backbones declare files of the server at ``base``.

    Each file lands in ``$MIRROR_CACHE`` with a completion marker, as kagglehub's do.
    """
    return MIRROR_PLUGIN.format(base=base, published=dict(published))


def bn_cnn_plugin(trainable: bool) -> str:
    """Source of a plugin with ``bn_cnn``: conv1, bn1 (momentum 0.9), relu1, conv2, bn2
    (momentum 0.99), trainable by default when ``trainable``."""
    return f"""
import zoo

def build(image_shape, params):
    import keras
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(image_shape),
            layers.Conv2D(4, 3, name="conv1"),
            layers.BatchNormalization(momentum=0.9, name="bn1"),
            layers.ReLU(name="relu1"),
            layers.Conv2D(4, 3, name="conv2"),
            layers.BatchNormalization(name="bn2"),
        ],
        name="bn_cnn",
    )
    model.trainable = params["trainable"]
    return zoo.BuiltBackbone(model=model, preprocessing="unit")

@zoo.hookimpl
def register_backbones(register):
    register(zoo.Backbone(
        name="bn_cnn",
        description="Two convolutions with batch normalization",
        params=[zoo.Param("trainable", bool, {trainable})],
        build=build,
        min_image_size=8,
    ))
"""


def interrupt_after_epoch(monkeypatch: Any, epoch: int) -> None:
    """Stop a run in this process as if Ctrl-C came right after the checkpoint of ``epoch``
    (``monkeypatch``: pytest's fixture, or one of its contexts)."""
    from zoo.train.durability import checkpoints

    save = checkpoints.save

    def save_then_interrupt(run_dir: Path, state: Any, *args: Any, **kwargs: Any) -> Any:
        written = save(run_dir, state, *args, **kwargs)
        if state.epoch == epoch:
            raise KeyboardInterrupt
        return written

    monkeypatch.setattr(checkpoints, "save", save_then_interrupt)


def rewrite_manifest(model_file: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    """Edit zoo.json inside a .keras archive (zip members cannot be replaced in place)."""
    with zipfile.ZipFile(model_file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members["zoo.json"])
    change(manifest)
    members["zoo.json"] = json.dumps(manifest).encode()
    replace_members(model_file, members)


def replace_members(model_file: Path, members: dict[str, bytes]) -> None:
    """Write the .keras archive ``model_file`` anew with ``members`` (name: bytes)."""
    with zipfile.ZipFile(model_file, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
