"""What a ``zoo tune`` trial draws: a backbone, a head and the settings searched.

Each searched setting has one range, here, and Optuna draws it by name, so every trial
of a study draws from the same distributions (Optuna refuses a name drawn from two). A
setting the user fixes (``--learning-rate 0.01``, ``--set head.dropout=0.2``) is not
searched: it holds for every trial.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError, closest, one_of

if TYPE_CHECKING:
    import optuna

#: What each searchable setting draws, said for ``zoo tune --help`` and the docs.
SEARCHABLE: dict[str, str] = {
    "learning_rate": "log-uniform from 1e-4 to 3e-2",
    "dropout": "the head's dropout (heads that have one), uniform from 0 to 0.5",
    "label_smoothing": "uniform from 0 to 0.2",
    "weight_decay": "AdamW's decay, log-uniform from 1e-5 to 1e-1",
    "class_weight": "none or balanced",
    "augment_views": "no augmentation, or 2 or 4 cached augmented views",
    "lr_schedule": "constant or cosine",
}


@dataclass(frozen=True)
class Draw:
    """One trial's choice: the components and what to run them with.

    Args:
        backbone: The backbone's name.
        head: The head's name.
        settings: Run settings, as ``zoo run``'s flags would give them.
        sets: Component parameters, as ``--set KIND.PARAM=VALUE`` would give them.
    """

    backbone: str
    head: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    sets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Space:
    """The search space of a study.

    Args:
        backbones: The backbones a trial chooses from.
        heads: The heads a trial chooses from.
        searched: The settings drawn (keys of :data:`SEARCHABLE`).
        fine_tune_depths: With fine-tuning asked for, the ``--fine-tune-layers`` values
            drawn from (beside none); empty: no fine-tuning is searched.
        with_dropout: The heads that declare a ``dropout`` parameter.
    """

    backbones: tuple[str, ...]
    heads: tuple[str, ...]
    searched: tuple[str, ...] = tuple(SEARCHABLE)
    fine_tune_depths: tuple[str, ...] = ()
    with_dropout: frozenset[str] = frozenset()

    def draw(self, trial: optuna.Trial | optuna.trial.FixedTrial) -> Draw:
        """Draw one trial's backbone, head and settings from ``trial``'s sampler."""
        backbone = str(trial.suggest_categorical("backbone", self.backbones))
        head = str(trial.suggest_categorical("head", self.heads))
        searched, settings = set(self.searched), dict[str, Any]()
        if "learning_rate" in searched:
            settings["learning_rate"] = trial.suggest_float("learning_rate", 1e-4, 3e-2, log=True)
        if "label_smoothing" in searched:
            settings["label_smoothing"] = trial.suggest_float("label_smoothing", 0.0, 0.2)
        if "weight_decay" in searched:
            settings["optimizer"] = "adamw"
            settings["weight_decay"] = trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True)
        for name, choices in (
            ("class_weight", ("none", "balanced")),
            ("lr_schedule", ("constant", "cosine")),
        ):
            if name in searched:
                settings[name] = trial.suggest_categorical(name, choices)
        if "augment_views" in searched:
            views = int(trial.suggest_categorical("augment_views", (0, 2, 4)))
            settings["augment"] = views > 0
            settings["augment_views"] = max(views, 1)
        sets = []
        if "dropout" in searched and head in self.with_dropout:
            sets.append(f"head.dropout={trial.suggest_float('dropout', 0.0, 0.5):.6g}")
        if self.fine_tune_depths:
            depth = str(
                trial.suggest_categorical("fine_tune_layers", ("0", *self.fine_tune_depths))
            )
            if depth == "0":  # no fine-tuning stage
                settings.update(fine_tune_layers="", fine_tune_epochs=0)
            else:
                settings["fine_tune_layers"] = depth
        return Draw(backbone, head, settings, tuple(sets))

    def to_dict(self) -> dict[str, Any]:
        """As the study keeps it, so a process joining it searches the same space."""
        return {
            "backbones": list(self.backbones),
            "heads": list(self.heads),
            "searched": list(self.searched),
            "fine_tune_depths": list(self.fine_tune_depths),
        }


def searched_settings(text: str | None, fixed: Sequence[str]) -> tuple[str, ...]:
    """The settings ``--search A,B`` names (default: all), less those fixed by the user.

    Raises:
        ZooError: a name that is not searchable, with the closest one.
    """
    names = [n.strip() for n in text.split(",") if n.strip()] if text else list(SEARCHABLE)
    for name in names:
        if name not in SEARCHABLE:
            hint = closest(name, SEARCHABLE)
            raise ZooError(
                f"zoo tune cannot search '{name}'.",
                expected=f"one of {one_of(SEARCHABLE)}",
                fix=(f"did you mean '{hint[0]}'? " if hint else "") + "see zoo tune --help",
                got=name,
            )
    return tuple(n for n in names if n not in fixed)
