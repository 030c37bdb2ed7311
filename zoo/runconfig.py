"""A run's configuration: which components, their parameters, and the run settings.

Precedence, weakest first: declared defaults, registry files (zoo's, then the user's),
the recipe, the command line (flags and ``--set``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoo.components import KINDS, Backbone, Dataset, Head, Observer
from zoo.config.registry_file import Recipe, read_recipe_file
from zoo.config.settings import BY_NAME, SETTINGS, RunSettings
from zoo.errors import ZooError, one_of
from zoo.params import resolve
from zoo.registry import Entry, Registry


@dataclass(frozen=True)
class Choice:
    """One chosen component: its name, the plugin that gives it, its parameters."""

    kind: str
    name: str
    plugin: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"


@dataclass(frozen=True, kw_only=True)
class RunConfig(RunSettings):
    """Everything a run needs to be repeated, JSON-serialisable: the three components,
    their parameters, and the run settings (:class:`zoo.config.settings.RunSettings`)."""

    dataset: Choice
    backbone: Choice
    head: Choice
    recipe: str | None = None

    @property
    def choices(self) -> tuple[Choice, Choice, Choice]:
        return (self.dataset, self.backbone, self.head)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 3)

    def flat(self) -> dict[str, str | int | float | bool]:
        """The components, their parameters and the settings as one flat mapping of plain
        values, for trackers (MLflow's params, TensorBoard's hyperparameters)::

            {"dataset": "shapes", "dataset.n": 400, "backbone": "resnet50",
             "backbone.weights": "imagenet", "head": "gap_sigmoid", "epochs": 7, ...}

        A value that is not a string, number or boolean (``None``, a list) is its JSON text.
        """
        flat: dict[str, Any] = {}
        for choice in self.choices:
            flat[choice.kind] = choice.name
            flat.update({f"{choice.kind}.{k}": v for k, v in sorted(choice.params.items())})
        flat.update({s.name: getattr(self, s.name) for s in SETTINGS})
        if self.recipe is not None:
            flat["recipe"] = self.recipe
        plain = (str, int, float)  # bool is an int
        return {k: v if isinstance(v, plain) else json.dumps(v) for k, v in flat.items()}

    def to_dict(self) -> dict[str, Any]:
        """As config.json holds it: the components, the settings, the recipe."""
        data = asdict(self)
        return {
            **{kind: data[kind] for kind in KINDS},
            **{s.name: data[s.name] for s in SETTINGS},
            "recipe": self.recipe,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Read config.json; a setting it lacks (an older zoo wrote it) has its default."""
        settings = {s.name: data[s.name] for s in SETTINGS if s.name in data}
        return cls(
            dataset=Choice(**data["dataset"]),
            backbone=Choice(**data["backbone"]),
            head=Choice(**data["head"]),
            recipe=data.get("recipe"),
            **settings,
        )


@dataclass(frozen=True)
class Resolved:
    """A run configuration with the registry entries it names.

    ``heads`` holds every registered head, so that a head which does not fit the data
    (known only once a dataset without ``class_names`` is loaded) can be replaced by
    one that does.
    """

    config: RunConfig
    dataset: Entry[Dataset]
    backbone: Entry[Backbone]
    head: Entry[Head]
    heads: tuple[Entry[Head], ...] = field(default=(), repr=False)
    #: The observers ``config.track`` names, each with its resolved parameters.
    observers: tuple[Tracked, ...] = ()


@dataclass(frozen=True)
class Tracked:
    """A run observer a run names (``--track``), with its resolved parameters."""

    entry: Entry[Observer]
    params: Mapping[str, Any]


def tracked(registry: Registry, track: str) -> tuple[Tracked, ...]:
    """The observers ``track`` names (``"mlflow,epoch_log"``), each with its parameters:
    its declared defaults under the registry files' (``[components.observer.NAME]``).

    Raises:
        ZooError: a name is not a registered observer (the closest are listed), or its
            plugin is unavailable (the message gives the install command).
    """
    names = dict.fromkeys(name.strip() for name in track.split(",") if name.strip())
    found = []
    for name in names:
        entry = registry.get("observer", name)
        layers = [(entry.meta.source or "registry.toml", entry.meta.defaults)]
        found.append(Tracked(entry, resolve("observer", entry.name, entry.params, layers)))
    return tuple(found)


def resolve_run(
    registry: Registry,
    names: Sequence[str] = (),
    *,
    recipe: str | None = None,
    settings: Mapping[str, Any] | None = None,
    sets: Sequence[str] = (),
) -> Resolved:
    """Resolve names, parameters and settings into a checked run configuration.

    Args:
        registry: The loaded registry.
        names: ``(dataset, backbone, head)``; empty when ``recipe`` is given.
        recipe: A recipe name from a registry file, or a recipe file's path (``.toml``,
            what ``zoo tune`` writes).
        settings: Run settings from the command line (``epochs``, ...); ``None``
            values are ignored.
        sets: ``KIND.PARAM=VALUE`` assignments from ``--set``.

    Raises:
        ZooError: unknown names or parameters, bad values, or a combination that
            cannot work (see :func:`check_compatibility`).
    """
    chosen = _recipe_or_names(registry, names, recipe)
    entries = _lookup(registry, chosen.names)
    overrides = _parse_sets(sets)
    choices = {}
    for entry in entries:
        kind = entry.kind
        layers = [(entry.meta.source or "registry.toml", entry.meta.defaults)]
        if chosen.recipe:
            layers.append((chosen.recipe.source, chosen.recipe.params.get(kind, {})))
        layers.append(("--set", overrides[kind]))
        values = resolve(kind, entry.name, entry.params, layers)
        choices[kind] = Choice(kind, entry.name, entry.plugin.name, values)
    run_layers = [(f.path.name, f.run) for f in registry.files]
    if chosen.recipe:
        run_layers.append((chosen.recipe.source, chosen.recipe.settings))
    run_layers.append(
        ("the command line", {k: v for k, v in (settings or {}).items() if v is not None})
    )
    run = resolve("run", "settings", SETTINGS, run_layers, flag=lambda name: BY_NAME[name].usage)
    config = RunConfig(
        dataset=choices["dataset"],
        backbone=choices["backbone"],
        head=choices["head"],
        recipe=chosen.recipe.name if chosen.recipe else None,
        **run,
    )
    heads = tuple(registry.entries("head"))
    resolved = Resolved(config, *entries, heads, tracked(registry, config.track))
    check_compatibility(resolved)
    return resolved


def resolve_saved(registry: Registry, saved: Mapping[str, Any]) -> Resolved:
    """The configuration a run directory's config.json holds, against today's registry.

    Raises:
        ZooError: a component is no longer registered, or its parameters changed.
    """
    try:
        config = RunConfig.from_dict(saved)
    except (KeyError, TypeError, ValueError) as exc:
        raise ZooError(
            f"config.json does not hold a run configuration zoo can read ({exc!r}).",
            expected="config.json as `zoo run` wrote it",
            fix="restore it from a copy of the run directory",
        ) from None
    entries = _lookup(registry, (config.dataset, config.backbone, config.head))
    for choice, entry in zip(config.choices, entries, strict=True):
        resolve(choice.kind, entry.name, entry.params, [("config.json", choice.params)])
    heads = tuple(registry.entries("head"))
    resolved = Resolved(config, *entries, heads, _saved_observers(registry, config.track))
    check_compatibility(resolved)
    return resolved


def _saved_observers(registry: Registry, track: str) -> tuple[Tracked, ...]:
    """The observers config.json names; one missing here says how to go on without it."""
    try:
        return tracked(registry, track)
    except ZooError as exc:
        raise ZooError(
            f"config.json tracks the run with {track!r}, but {exc.what}",
            expected=exc.expected,
            fix=f"{exc.fix or 'install the plugin that provides it'}; or resume without "
            "it: zoo run --resume RUN_DIR --track '' (or --track with other observers)",
            got=exc.got,
        ) from None


def _lookup(
    registry: Registry, names: tuple[str | Choice, str | Choice, str | Choice]
) -> tuple[Entry[Dataset], Entry[Backbone], Entry[Head]]:
    """The three components named (a short or qualified name, or a saved choice)."""
    dataset, backbone, head = (n.qualified_name if isinstance(n, Choice) else n for n in names)
    return (
        registry.get("dataset", dataset),
        registry.get("backbone", backbone),
        registry.get("head", head),
    )


def check_compatibility(resolved: Resolved) -> None:
    """Catch combinations that cannot work, before any data is touched.

    Raises:
        ZooError: the image size is below the backbone's minimum, or the head does
            not support the dataset's number of classes.
    """
    config = resolved.config
    backbone = resolved.backbone.component
    if config.image_size < backbone.min_image_size:
        raise ZooError(
            f"backbone '{backbone.name}' needs images of at least "
            f"{backbone.min_image_size}x{backbone.min_image_size}; "
            f"the run asks for {config.image_size}x{config.image_size}.",
            expected=f"--image-size {backbone.min_image_size} or more",
            fix=f"pass --image-size {backbone.min_image_size} (or larger)",
            got=config.image_size,
        )
    _check_settings(config)
    dataset = resolved.dataset.component
    if dataset.class_names is not None:
        check_classes(resolved, len(dataset.class_names(config.dataset.params)))


def _check_settings(config: RunConfig) -> None:
    """Settings that only make sense together, or within bounds a declaration cannot say."""
    if config.fine_tune_epochs and not config.fine_tune_layers.strip():
        raise ZooError(
            "--fine-tune-epochs needs --fine-tune-layers: which part of the backbone to unfreeze.",
            expected="a number of top layers (e.g. 20) or the name of the first layer to unfreeze",
            fix=f"pass e.g. --fine-tune-layers 20 (`zoo info {config.backbone.name} --layers` "
            "lists them)",
            got=config.fine_tune_layers,
        )
    if config.fine_tune_layers.strip() and not config.fine_tune_epochs:
        raise ZooError(
            "--fine-tune-layers needs --fine-tune-epochs: how long to fine-tune; without "
            "it there is no fine-tuning stage.",
            expected="--fine-tune-epochs N (N >= 1) beside --fine-tune-layers",
            fix=f"pass e.g. --fine-tune-epochs 3, or drop --fine-tune-layers "
            f"{config.fine_tune_layers}",
            got=config.fine_tune_layers,
        )
    if not 0 < config.plateau_factor < 1:
        raise ZooError(
            "--plateau-factor must lower the learning rate.",
            expected="a number between 0 and 1 (exclusive), such as 0.5",
            fix="pass --plateau-factor 0.5",
            got=config.plateau_factor,
        )


def check_classes(resolved: Resolved, num_classes: int) -> None:
    """Raise a ZooError when the head cannot handle the dataset's ``num_classes`` classes.

    The fix names the registered heads that can.
    """
    head = resolved.head.component
    if head.supports(num_classes):
        return
    fitting = [e.name for e in resolved.heads if e.component.supports(num_classes)]
    suggestion = f"use {one_of(fitting)}" if fitting else "register one (docs/plugins.md)"
    raise ZooError(
        f"head '{head.name}' supports {head.class_range} classes, but dataset "
        f"'{resolved.dataset.name}' has {num_classes}.",
        expected=f"a head that supports {num_classes} classes",
        fix=f"{suggestion} (`zoo list heads`)",
        got=num_classes,
    )


@dataclass(frozen=True)
class _Chosen:
    names: tuple[str, str, str]
    recipe: Recipe | None


def _recipe_or_names(registry: Registry, names: Sequence[str], recipe: str | None) -> _Chosen:
    if recipe and names:
        raise ZooError(
            "give either --recipe or DATASET BACKBONE HEAD, not both.",
            expected="zoo run --recipe NAME, or zoo run DATASET BACKBONE HEAD",
            fix="drop the names, or drop --recipe",
            got=" ".join(names),
        )
    if recipe:
        found = (
            read_recipe_file(Path(recipe)) if recipe.endswith(".toml") else registry.recipe(recipe)
        )
        return _Chosen((found.dataset, found.backbone, found.head), found)
    if len(names) != 3:
        raise ZooError(
            "zoo run needs a dataset, a backbone and a head.",
            expected="zoo run DATASET BACKBONE HEAD (or zoo run --recipe NAME)",
            fix="for example: zoo run shapes small_cnn gap_sigmoid",
            got=" ".join(names),
        )
    return _Chosen((names[0], names[1], names[2]), None)


def _parse_sets(sets: Sequence[str]) -> dict[str, dict[str, str]]:
    overrides: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
    for text in sets:
        kind, param, value = parse_assignment(text)
        overrides[kind][param] = value
    return overrides


def parse_assignment(text: str) -> tuple[str, str, str]:
    """``"backbone.weights=none"`` as ``("backbone", "weights", "none")``.

    Raises:
        ZooError: the text is not ``KIND.PARAM=VALUE`` with a known kind.
    """
    head, sep, value = text.partition("=")
    kind, dot, param = head.strip().partition(".")
    if not sep or not dot or not param:
        raise ZooError(
            "--set takes KIND.PARAM=VALUE.",
            expected="for example --set backbone.weights=none",
            fix="write the kind, a dot, the parameter, '=' and the value",
            got=text,
        )
    if kind not in KINDS:
        raise ZooError(
            f"--set names an unknown kind '{kind}'.",
            expected=f"one of {', '.join(KINDS)}",
            fix=f"write e.g. --set {KINDS[0]}.{param}={value}",
            got=text,
        )
    return kind, param, value
