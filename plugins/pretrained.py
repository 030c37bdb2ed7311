"""``shapes_cnn``: the tutorial's small CNN, pretrained offline, shipped with zoo.

Transfer learning needs a pretrained backbone, and ImageNet weights need the internet.
This backbone is the small CNN (3 x Conv 3x3 + MaxPool, 32/32/64 filters) pretrained
on a *source* task zoo can draw offline: ``shapes`` with four classes (circle, square,
triangle, cross), 8,000 images at 64x64. Targets such as ring vs diamond (the
``demo_*`` recipes, ``zoo demo``) are different classes: the backbone has never seen a
ring or a diamond, but its edge and corner detectors transfer.

The weights file (``weights/shapes_cnn.weights.h5``, 137 KB) is reproduced by::

    python tools/pretrain_demo_backbone.py --output plugins/weights/shapes_cnn.weights.h5

which trains with fixed seeds and deterministic ops (about 2-3 minutes on 2 CPU cores)
and prints the file's SHA-256 and whether it is the shipped one: bit-identical with the
same zoo, TensorFlow and Keras versions on the same kind of CPU (see the script).
Every build checks the shipped file against :data:`WEIGHTS_SHA256`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import zoo

#: The shipped weights, and the hash they must have.
WEIGHTS_FILE = Path(__file__).resolve().parent / "weights" / "shapes_cnn.weights.h5"
WEIGHTS_SHA256 = "3b452a26e771e559bc0531c4e4e6a59927c61936f7d070231d793e358fc89029"
#: The architecture the weights belong to: small_cnn's filters per block.
FILTERS = "32,32,64"
SHIPPED = "shapes4"
REBUILD = "python tools/pretrain_demo_backbone.py --output plugins/weights/shapes_cnn.weights.h5"


def check_sha256(path: Path, expected: str) -> None:
    """Raise a ZooError unless the file at ``path`` hashes to ``expected``."""
    if not path.is_file():
        raise zoo.ZooError(
            f"shapes_cnn: the pretrained weights file {path} is missing.",
            expected="the weights file that ships with zoo",
            fix=f"reinstall zoo, or rebuild the file: {REBUILD}",
            got=str(path),
        )
    found = zoo.sha256(path)
    if found != expected:
        raise zoo.ZooError(
            f"shapes_cnn: the weights file {path} has the wrong SHA-256; it is damaged "
            "or was replaced.",
            expected=f"SHA-256 {expected}",
            fix=f"reinstall zoo, or rebuild the file: {REBUILD}",
            got=found,
        )


def weights_path(value: str) -> Path | None:
    """The file ``weights`` names: the shipped one (checked), ``None``, or a user's path."""
    if value == SHIPPED:
        check_sha256(WEIGHTS_FILE, WEIGHTS_SHA256)
        return WEIGHTS_FILE
    if value.lower() == "none":
        return None
    path = Path(value).expanduser()
    if not path.name.endswith(".weights.h5") or not path.is_file():
        raise zoo.ZooError(
            f"shapes_cnn: weights must be '{SHIPPED}', 'none' or an existing .weights.h5 file.",
            expected=f"'{SHIPPED}' (shipped with zoo), 'none' (random) or a path",
            fix=f"--set backbone.weights={SHIPPED}",
            got=value,
        )
    return path


def build(image_shape: tuple[int, int, int], params: Mapping[str, Any]) -> zoo.BuiltBackbone:
    from . import small_cnn

    path = weights_path(params["weights"])
    built = small_cnn.build(image_shape, {"filters": FILTERS, "trainable": params["trainable"]})
    if path is not None:
        try:
            built.model.load_weights(path)
        except ValueError as exc:
            raise zoo.ZooError(
                f"shapes_cnn: the weights in {path} do not fit its layers: {exc}",
                expected=f"a weights file saved from the small CNN with filters {FILTERS}",
                fix=f"pass weights of that architecture, or --set backbone.weights={SHIPPED}",
                got=str(path),
            ) from None
    return zoo.BuiltBackbone(
        model=built.model,
        preprocessing=built.preprocessing,
        weights_file=str(path) if path is not None else None,
        pretrained=path is not None,
    )


@zoo.hookimpl
def register_backbones(register: Callable[[zoo.Backbone], None]) -> None:
    from .small_cnn import min_image_size

    register(
        zoo.Backbone(
            name="shapes_cnn",
            description="The small CNN pretrained offline on four shapes; frozen",
            params=(
                zoo.Param(
                    "weights",
                    str,
                    SHIPPED,
                    f"'{SHIPPED}' (pretrained on circle/square/triangle/cross, shipped), "
                    "'none' (random) or a .weights.h5 path",
                ),
                zoo.Param("trainable", bool, False, "train the backbone (True fine-tunes it)"),
            ),
            build=build,
            min_image_size=min_image_size(len(FILTERS.split(","))),
            family="small CNN",
            parameters=28_640,
            native_image_size=64,
            source="zoo, pretrained on shapes (plugins/weights/)",
        )
    )
