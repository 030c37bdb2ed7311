"""Comparing runs: a table of what each run was and achieved (its figure of curves is
:mod:`zoo.results.curves`).

Reads run directories only (``config.json``, ``metrics.json``); TensorFlow is never
imported. Runs may differ in length, may have failed, stopped or been resumed: each is
shown with what it recorded.

Each run gets a short label: the one given (``--label``), else its recipe, else the
fewest of the settings that differ between the runs which tell them apart
(``resnet50 lr=0.01``). Settings that did not apply to a run (fine-tuning settings of a
run that never fine-tuned, augmentation settings without ``--augment``) are not its
differences, and a fine-tuned backbone reads ``fine-tuned from LAYER``, not the
``trainable=False`` of its first stage. The default target accuracy ignores runs that
stayed at chance, which would make it meaningless. Runs are ranked by
:mod:`zoo.results.ranking`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from zoo.components import KINDS
from zoo.config.settings import SETTINGS
from zoo.storage.runs import RunRecord, finite_number

#: Closer than this to the target counts as reaching it (the default target is one of
#: the recorded values, which must reach itself).
_TOLERANCE = 1e-9
#: A run whose best validation accuracy is within this of chance learned nothing.
CHANCE_MARGIN = 0.05
#: Settings shown bare in labels: their values are names (``resnet50``, not ``backbone=``).
_NAMED = ("recipe", *KINDS)
#: How a fine-tuned run's backbone reads, in its differences and label (``None``: the
#: run did not fine-tune).
FINE_TUNED = "fine_tuned"
#: A setting that did not apply to a run (see :data:`_APPLIES`): never a difference.
NOT_APPLIED = object()
#: What labels say first when it tells runs apart: the names, then fine-tuning.
_FIRST = (*_NAMED, FINE_TUNED)
#: Settings the epochs counted say, left out of a run's ``differences``.
_COUNTED = ("epochs", "fine_tune_epochs")
#: Names shorter than the settings' own, for labels.
_SHORT = {"learning_rate": "lr"}
#: The settings that apply only when another says so, and when they apply. Weight decay
#: and label smoothing always apply: 0 is a value (no decay, hard labels), with every
#: optimizer, since Keras decays with each (``adamw`` is ``adam`` with decay).
_APPLIES: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    **dict.fromkeys(
        ("fine_tune_epochs", "fine_tune_lr", "fine_tune_layers"),
        lambda flat: bool(flat.get("fine_tune_epochs")),
    ),
    **dict.fromkeys(
        (s.name for s in SETTINGS if s.name.startswith("augment_")),
        lambda flat: bool(flat.get("augment")),
    ),
    **dict.fromkeys(
        ("plateau_patience", "plateau_factor"), lambda flat: flat.get("lr_schedule") == "plateau"
    ),
    "runtime_precision": lambda flat: flat.get("runtime") != "tensorflow",
    "ema_momentum": lambda flat: bool(flat.get("ema")),
    # Which observers heard a run (--track) never changes what it learns.
    "track": lambda flat: False,
}
#: How a warning says what became of a run that did not complete.
_STATES = {
    "failed": "failed",
    "interrupted": "was interrupted (`zoo run` can resume it)",
    "running": "is still running, or was killed",
    "unknown": "has no metrics.json yet (still starting, or killed)",
}


def compare(
    records: Sequence[RunRecord], target: float | None = None, labels: Sequence[str] = ()
) -> dict[str, Any]:
    """The comparison of ``records`` as plain data (what ``--json`` prints).

    Args:
        records: The runs, as :func:`zoo.storage.runs.read_run` reads them.
        target: The validation accuracy whose first epoch is reported; by default the
            lowest of the best validation accuracies of the runs above chance, so every
            such run reaches it.
        labels: Names for the first runs (``--label``); the others get default labels.
    """
    if target is None:
        target = default_target(records)
    differs = differing_settings(records)
    names = run_labels(records, labels)
    return {
        "target": target,
        "runs": [
            summarize(r, label, target, d)
            for r, label, d in zip(records, names, differs, strict=True)
        ],
        "warnings": mismatch_warnings(records, names),
    }


def best_val_accuracy(record: RunRecord) -> float | None:
    values = record.series("val_accuracy")[1]
    return max(values) if values else None


def chance(record: RunRecord) -> float | None:
    """The validation accuracy of always guessing the most common class (``None``: the
    run records no classes)."""
    dataset = record.metrics.get("dataset") or {}
    counts = list(((dataset.get("class_counts") or {}).get("validation") or {}).values())
    if counts and sum(counts):
        return max(counts) / sum(counts)
    names = dataset.get("class_names")
    return 1 / len(names) if names else None


def at_chance(record: RunRecord) -> bool:
    """The run's best validation accuracy is within :data:`CHANCE_MARGIN` of chance."""
    best, level = best_val_accuracy(record), chance(record)
    return best is not None and level is not None and best <= level + CHANCE_MARGIN


def default_target(records: Sequence[RunRecord]) -> float | None:
    """The lowest best validation accuracy of the runs above chance (of all runs when
    none is above it; ``None``: no run has one)."""
    learned = [r for r in records if not at_chance(r)] or records
    bests = [b for b in map(best_val_accuracy, learned) if b is not None]
    return min(bests) if bests else None


def summarize(
    record: RunRecord, label: str, target: float | None, differs: Mapping[str, Any]
) -> dict[str, Any]:
    """One run's row of the comparison."""
    epochs, val = record.series("val_accuracy")
    best = max(range(len(val)), key=val.__getitem__) if val else None
    timings = dict(record.metrics.get("timings") or {})
    stages = stage_epochs(record)
    return {
        "label": label,
        "path": str(record.path),
        "status": record.status,
        "error": record.metrics.get("error"),
        **{kind: record.config.get(kind, {}).get("name") for kind in KINDS},
        "differs": {k: v for k, v in differs.items() if not _unset(v)},
        "differences": [
            setting_text(k, v) for k, v in differs.items() if not _unset(v) and k not in _COUNTED
        ],
        "parameters": dict(record.metrics.get("parameters") or {}),
        "fine_tuned": fine_tuned_from(record),
        "fine_tune_parameters": dict(record.metrics.get("fine_tune_parameters") or {}),
        "epochs": len(record.history),
        "planned_epochs": sum(s["planned"] or 0 for s in stages.values()) or None,
        "stages": stages,
        "chance": chance(record),
        "at_chance": at_chance(record),
        "final_val_accuracy": val[-1] if val else None,
        "best_val_accuracy": val[best] if best is not None else None,
        "best_epoch": epochs[best] if best is not None else None,
        "test_accuracy": (record.metrics.get("test") or {}).get("accuracy"),
        "epochs_to_target": epochs_to(record, target),
        "stage_starts": record.stage_starts(),
        "resumed": len(record.metrics.get("resumed") or []),
        "timings": timings,
        "total_seconds": round(sum(v for v in timings.values() if finite_number(v)), 3),
    }


def stage_epochs(record: RunRecord) -> dict[str, dict[str, int | None]]:
    """Epochs done and planned per stage: ``{"head": {"done": 3, "planned": 5}, ...}``.

    Rows recorded without a stage (by an older zoo) belong to the head stage.
    """
    planned = {
        "head": record.config.get("epochs"),
        "fine_tune": record.config.get("fine_tune_epochs"),
    }
    done = Counter(row.get("stage") or "head" for row in record.history)
    return {
        stage: {"done": done[stage], "planned": planned.get(stage)}
        for stage in dict.fromkeys(["head", *done, *(s for s, n in planned.items() if n)])
    }


def epochs_to(record: RunRecord, target: float | None) -> int | None:
    """The first epoch whose validation accuracy reaches ``target`` (``None``: never)."""
    if target is None:
        return None
    epochs, values = record.series("val_accuracy")
    return next((e for e, v in zip(epochs, values, strict=True) if v >= target - _TOLERANCE), None)


def flat_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """``{"dataset": "shapes", "dataset.classes": "...", "epochs": 7, ...}``."""
    flat: dict[str, Any] = {}
    for kind in KINDS:
        choice = config.get(kind) or {}
        flat[kind] = choice.get("name")
        for key, value in (choice.get("params") or {}).items():
            flat[f"{kind}.{key}"] = value
    # A setting an older zoo did not write ran with its default.
    flat.update({s.name: config.get(s.name, s.default) for s in SETTINGS})
    return flat


def applied_settings(record: RunRecord) -> dict[str, Any]:
    """:func:`flat_settings` less those that did not apply to the run (see
    :data:`_APPLIES`); a fine-tuned run's backbone is ``fine_tuned`` rather than the
    ``trainable=False`` of its first stage."""
    flat = flat_settings(record.config)
    applied = {
        k: v if k not in _APPLIES or _APPLIES[k](flat) else NOT_APPLIED for k, v in flat.items()
    }
    applied[FINE_TUNED] = fine_tuned_from(record)
    if applied[FINE_TUNED]:
        applied.pop("fine_tune_layers", None)
        if applied.get("backbone.trainable") is False:
            applied["backbone.trainable"] = NOT_APPLIED
    return applied


def fine_tuned_from(record: RunRecord) -> str | None:
    """``from conv5_block1`` (the first layer unfrozen, as recorded), else as asked:
    ``from LAYER``, or ``top N layers``; ``None`` for a run that did not fine-tune."""
    if not record.config.get("fine_tune_epochs"):
        return None
    unfrozen = record.metrics.get("fine_tune_layers")
    if isinstance(unfrozen, list) and unfrozen and isinstance(unfrozen[0], str):
        return f"from {unfrozen[0]}"
    asked = str(record.config.get("fine_tune_layers") or "").strip()
    if asked.isdigit():
        return f"top {asked} layers"
    return f"from {asked}" if asked else "top layers"


def differing_settings(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """Per run, the applied settings whose values are not the same in every run where
    they applied (a parameter a run's component lacks is ``None``)."""
    flats = [applied_settings(r) for r in records]
    differ = _differing(flats)
    return [{k: flat.get(k) for k in differ} for flat in flats]


def _differing(flats: Sequence[Mapping[str, Any]]) -> list[str]:
    return [k for k in _keys(flats) if len(_values(flats, k)) > 1]


def _values(flats: Sequence[Mapping[str, Any]], key: str) -> set[str]:
    """The distinct values of ``key`` among the runs where it applied."""
    return {repr(f.get(key)) for f in flats if f.get(key) is not NOT_APPLIED}


def run_labels(records: Sequence[RunRecord], given: Sequence[str] = ()) -> list[str]:
    """A short label per run: ``given`` for the first runs, then the recipes when they
    tell the runs apart, else the fewest differing settings that do; runs that differ
    in nothing are numbered (``small_cnn #2``)."""
    recipes = [r.config.get("recipe") for r in records]
    if all(recipes) and len(set(recipes)) == len(recipes):
        defaults = [str(r) for r in recipes]
    else:
        defaults = _telling_labels([applied_settings(r) for r in records])
    labels = [*given, *defaults[len(given) :]]
    repeated = {label for label in labels if labels.count(label) > 1}
    return [f"{label} #{i}" if label in repeated else label for i, label in enumerate(labels, 1)]


def _telling_labels(flats: Sequence[Mapping[str, Any]]) -> list[str]:
    """Labels made of the settings that tell the runs apart, each run's no longer than
    it needs: see :func:`_tell_apart`."""
    differ = _differing(flats)
    keys = [k for k in _FIRST if k in differ] + [k for k in differ if k not in _FIRST]
    parts: list[list[str]] = [[] for _ in flats]
    _tell_apart(list(range(len(flats))), flats, keys, parts)
    return [" ".join(p) or str(f.get("backbone")) for p, f in zip(parts, flats, strict=True)]


def _tell_apart(
    group: list[int],
    flats: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    parts: list[list[str]],
) -> None:
    """Add to the labels of ``group`` (runs labelled alike so far) the first of
    :data:`_FIRST` that tells some of them apart, else the setting that tells most of them
    apart; then do the same within each group still labelled alike."""

    members = [flats[i] for i in group]
    telling = [k for k in keys if len(_values(members, k)) > 1]
    if len(group) < 2 or not telling:
        return
    first = [k for k in telling if k in _FIRST]
    key = first[0] if first else max(telling, key=lambda k: len(_values(members, k)))
    alike: dict[str, list[int]] = {}
    for i in group:
        if not _unset(flats[i].get(key)):
            parts[i].append(setting_text(key, flats[i][key]))
        alike.setdefault(repr(flats[i].get(key)), []).append(i)
    for runs in alike.values():
        _tell_apart(runs, flats, keys, parts)


def setting_text(key: str, value: Any) -> str:
    """How a setting reads in a label or a difference: ``resnet50``, ``lr=0.01``,
    ``weights=none``, ``fine-tuned from conv5``."""
    if key in _NAMED:
        return str(value)
    if key == FINE_TUNED:
        return f"fine-tuned {value}"
    name = key.rsplit(".", 1)[-1]
    return f"{_SHORT.get(name, name)}={value}"


def _unset(value: Any) -> bool:
    """``None`` (a parameter the run's component lacks), ``""`` (a setting left empty) or
    :data:`NOT_APPLIED`."""
    return value is None or value is NOT_APPLIED or value == ""


def _keys(flats: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for flat in flats for k in flat))


def mismatch_warnings(records: Sequence[RunRecord], labels: Sequence[str]) -> list[str]:
    """What makes the runs less comparable: different data, failures, unfinished runs."""
    warnings = []
    data = {repr(_data_of(r)) for r in records}
    if len(data) > 1:
        warnings.append(
            "the runs used different data (dataset, its parameters or image size); "
            "their accuracies are not directly comparable"
        )
    for record, label in zip(records, labels, strict=True):
        if at_chance(record):
            warnings.append(
                f"run {label} stayed at chance (best validation accuracy "
                f"{best_val_accuracy(record):.4f}, chance {chance(record):.4f}); "
                "the default target ignores it"
            )
        if record.status == "completed":
            continue
        state = _STATES.get(record.status, f"has status '{record.status}'")
        reason = f": {record.metrics['error']}" if record.metrics.get("error") else ""
        shown = (
            f"its curves end at epoch {record.history[-1]['epoch']}"
            if record.history
            else "it recorded no epochs"
        )
        warnings.append(f"run {label} {state}{reason}; {shown}")
    return warnings


def _data_of(record: RunRecord) -> tuple[Any, ...]:
    dataset = record.config.get("dataset") or {}
    return (dataset.get("name"), dataset.get("params"), record.config.get("image_size"))
