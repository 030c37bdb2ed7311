"""Run settings, each declared once: name, type, default, help, bounds.

:class:`RunSettings` has one keyword field per setting, in the manner of timm's
``PretrainedCfg``. Everything else derives from it: ``zoo run``'s flags (the flag is
the name with dashes; a setting that defaults to true gets ``--no-NAME``),
:class:`zoo.RunConfig` (which extends it), the checks of registry files' ``[run]``
tables and of recipes, the settings ``zoo compare`` tells apart, and the table in
docs/settings.md (a test keeps it in step).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from zoo.params import Param

#: The most epochs of a stage: a million, far past any run, well inside the step counts
#: (epochs x steps) TensorFlow holds.
_EPOCHS = 1_000_000
#: numpy and TensorFlow take seeds of 32 bits.
_SEED = 2**32 - 1


def setting(
    default: Any,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    choices: tuple[Any, ...] | None = None,
    metavar: str | None = None,
    flag_help: str | None = None,
) -> Any:
    """A field of :class:`RunSettings`.

    Args:
        default: The value when neither registry files, a recipe nor the command line
            give one.
        help: One line for ``zoo run --help`` and the docs; ``{default}`` in it is
            replaced by the default.
        minimum: The smallest number allowed.
        maximum: The largest number allowed: what the libraries take (a seed numpy
            accepts) or what is sensible (epochs, batch sizes) before a step overflows.
        below: A number every value must be below (a smoothing, a momentum: below 1).
        choices: The only values allowed.
        metavar: How ``zoo run --help`` names the flag's value.
        flag_help: The help of a ``--no-NAME`` flag, which says what turning it off does.
    """
    bounds = {"minimum": minimum, "maximum": maximum, "below": below}
    meta = {"help": help, "choices": choices, "metavar": metavar, "flag_help": flag_help}
    return dataclasses.field(default=default, metadata={**meta, **bounds})


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """How a run trains. Weakest first: these defaults, registry files' ``[run]``
    tables, the recipe, the command line."""

    epochs: int = setting(7, "passes over the training split", minimum=1, maximum=_EPOCHS)
    batch_size: int = setting(32, "images per step (the global batch)", minimum=1, maximum=2**20)
    image_size: int = setting(100, "resize images to SIZE x SIZE", minimum=1, maximum=8192)
    learning_rate: float = setting(1e-3, "the optimizer's learning rate", minimum=0)
    optimizer: str = setting(
        "adam",
        "adam, adamw (Keras's AdamW: Adam with --weight-decay, the same as adam with it), "
        "sgd or rmsprop",
        choices=("adam", "adamw", "sgd", "rmsprop"),
    )
    weight_decay: float = setting(
        0.0,
        "decoupled weight decay: before each update, every trainable weight shrinks by "
        "learning rate x W (AdamW's decay, which Keras applies with every optimizer)",
        minimum=0,
        metavar="W",
    )
    lr_schedule: str = setting(
        "constant",
        "each stage's learning rate: constant, cosine (falling to 0 over the stage) or "
        "plateau (times --plateau-factor after --plateau-patience epochs without a better "
        "--monitor)",
        choices=("constant", "cosine", "plateau"),
    )
    warmup_epochs: int = setting(
        0,
        "raise the learning rate linearly from 0 over each stage's first N epochs",
        minimum=0,
        maximum=_EPOCHS,
        metavar="N",
    )
    plateau_patience: int = setting(
        2,
        "with --lr-schedule plateau: epochs without a better --monitor before lowering",
        minimum=1,
        maximum=_EPOCHS,
        metavar="N",
    )
    plateau_factor: float = setting(
        0.5,
        "with --lr-schedule plateau: what the learning rate is multiplied by (below 1)",
        minimum=0,
        metavar="F",
    )
    class_weight: str = setting(
        "none",
        "weight each example's loss: none, or balanced (n / (classes x the class's "
        "training images), as scikit-learn computes it)",
        choices=("none", "balanced"),
    )
    label_smoothing: float = setting(
        0.0,
        "train towards softened labels: 1 - F on the true class plus F shared evenly by "
        "all classes (validation and test losses stay unsmoothed)",
        minimum=0,
        below=1,
        metavar="F",
    )
    ema: bool = setting(
        False,
        "keep an average of the weights over steps (Keras's EMA); the average is what is "
        "validated, kept as the best epoch, tested and saved",
    )
    ema_momentum: float = setting(
        0.99,
        "with --ema: what each step keeps of the average (average = M x average + "
        "(1 - M) x weights)",
        minimum=0,
        below=1,
        metavar="M",
    )
    seed: int = setting(0, "seeds shuffling and initialisation", minimum=0, maximum=_SEED)
    feature_cache: bool = setting(
        True,
        "train the head on cached features of a frozen backbone",
        flag_help="train on images even when the backbone is frozen",
    )
    runtime: str = setting(
        "auto",
        "what computes a frozen backbone's features: auto (OpenVINO when it is installed, "
        "the run is on the CPU and there are images enough to repay converting, else "
        "TensorFlow), tensorflow or openvino",
        choices=("auto", "tensorflow", "openvino"),
    )
    runtime_precision: str = setting(
        "float32",
        "the precision OpenVINO extracts features in: float32, or bfloat16 (about twice "
        "as fast on CPUs with BF16 instructions; features about 1% off)",
        choices=("float32", "bfloat16"),
    )
    keep: str = setting(
        "best",
        "the model saved and tested: the best epoch by --monitor (over all stages), or the last",
        choices=("best", "last"),
    )
    monitor: str = setting(
        "val_loss",
        "what 'better' means for --keep best, --early-stopping and the plateau schedule",
        choices=("val_loss", "val_accuracy"),
    )
    early_stopping: int = setting(
        0,
        "stop a stage after N epochs without a better --monitor",
        minimum=0,
        maximum=_EPOCHS,
        metavar="N",
    )
    augment: bool = setting(
        False, "augment training images: random flips, rotations, zooms, shifts, contrast"
    )
    augment_flip: str = setting(
        "horizontal",
        "with --augment: which random flips",
        choices=("none", "horizontal", "vertical", "both"),
    )
    augment_rotation: float = setting(
        0.05,
        "with --augment: rotate by up to this fraction of a full turn",
        minimum=0,
        maximum=1,
        metavar="F",
    )
    augment_zoom: float = setting(
        0.1,
        "with --augment: zoom in or out by up to this fraction",
        minimum=0,
        maximum=1,
        metavar="F",
    )
    augment_translation: float = setting(
        0.1,
        "with --augment: shift by up to this fraction of the side",
        minimum=0,
        maximum=1,
        metavar="F",
    )
    augment_contrast: float = setting(
        0.1,
        "with --augment: change contrast by up to this factor",
        minimum=0,
        maximum=1,
        metavar="F",
    )
    augment_views: int = setting(
        4,
        "with --augment and a frozen backbone: augmented copies of each training image "
        "whose features are cached; each epoch draws one per image",
        minimum=1,
        maximum=1024,
        metavar="K",
    )
    fine_tune_epochs: int = setting(
        0, "epochs of the fine-tuning stage", minimum=0, maximum=_EPOCHS, metavar="N"
    )
    fine_tune_layers: str = setting(
        "",
        "unfreeze the top N backbone layers (or from LAYER on) for a second stage "
        "(`zoo info BACKBONE --layers` lists them)",
        metavar="N|LAYER",
    )
    fine_tune_lr: float = setting(
        1e-5, "learning rate of the fine-tuning stage (default {default})", minimum=0, metavar="LR"
    )
    track: str = setting(
        "",
        "also tell the run to these observers, comma-separated: mlflow, or a plugin's "
        "(`zoo list observers`); with --resume, replaces the run's own",
        metavar="NAMES",
    )


@dataclass(frozen=True, kw_only=True)
class Setting(Param):
    """One run setting: a :class:`~zoo.params.Param` with what the command line shows."""

    metavar: str | None = None
    flag_help: str | None = None

    @property
    def flag(self) -> str:
        """``--batch-size``; ``--no-feature-cache`` for a setting that is on by default."""
        dashed = self.name.replace("_", "-")
        return f"--no-{dashed}" if self.type is bool and self.default else f"--{dashed}"

    @property
    def usage(self) -> str:
        """How to pass a value on the command line, for error messages."""
        return self.flag if self.type is bool else f"{self.flag} {self.metavar or 'VALUE'}"


def _declared(cls: type) -> Iterator[Setting]:
    types = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        meta = field.metadata
        yield Setting(
            field.name,
            types[field.name],
            field.default,
            meta["help"].format(default=_number(field.default)),
            choices=meta["choices"],
            minimum=meta["minimum"],
            maximum=meta["maximum"],
            below=meta["below"],
            metavar=meta["metavar"],
            flag_help=meta["flag_help"],
        )


def _number(value: Any) -> str:
    """``1e-05`` as people write it: ``1e-5``."""
    if isinstance(value, float):
        return re.sub(r"e([+-])0+(\d)", r"e\1\2", f"{value:g}")
    return str(value)


#: Every run setting, in declaration order.
SETTINGS: tuple[Setting, ...] = tuple(_declared(RunSettings))
#: The settings by name.
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
