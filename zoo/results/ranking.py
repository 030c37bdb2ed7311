"""Ranking compared runs: by what they recorded (``zoo compare --sort``), or by their
accuracy on a held-out folder of labelled images (``zoo compare --on FOLDER``).

Sorting reads the comparison's rows (:func:`zoo.results.compare.compare`). Ranking on a
folder loads each run's model and scores it as ``zoo evaluate RUN FOLDER`` does
(:mod:`zoo.results.evaluate`); TensorFlow is imported only then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError, closest, one_of
from zoo.storage.runs import MODEL, RunRecord

if TYPE_CHECKING:
    from zoo.registry import Registry

#: The ``--sort`` key with ``--on FOLDER``; without it, :data:`DEFAULT`.
HELD_OUT = "held-out"
DEFAULT = "best"


@dataclass(frozen=True)
class SortKey:
    """One ``--sort`` key: what it ranks by, and which way is better."""

    name: str
    describes: str
    value: Callable[[Mapping[str, Any]], Any]
    higher_first: bool = True


#: The ``--sort`` keys, by name. Runs without the value (failed, never tested) go last.
SORTS = {
    key.name: key
    for key in (
        SortKey("best", "best validation accuracy", lambda r: r["best_val_accuracy"]),
        SortKey("final", "final validation accuracy", lambda r: r["final_val_accuracy"]),
        SortKey("test", "test accuracy", lambda r: r["test_accuracy"]),
        SortKey(
            HELD_OUT, "accuracy on the --on folder", lambda r: (r["held_out"] or {}).get("accuracy")
        ),
        SortKey("target", "epochs to the target", lambda r: r["epochs_to_target"], False),
        SortKey("time", "total time", lambda r: r["total_seconds"] or None, False),
        SortKey("label", "label", lambda r: r["label"], False),
        SortKey("given", "the order given", lambda r: 0, False),
    )
}


def sort_key(name: str | None, held_out: bool) -> SortKey:
    """The ``--sort`` key called ``name``; by default the held-out accuracy with a
    folder, else the best validation accuracy.

    Raises:
        ZooError: no such key, or ``held-out`` without a folder.
    """
    name = name or (HELD_OUT if held_out else DEFAULT)
    if name not in SORTS:
        near = closest(name, SORTS)
        hint = f" (did you mean {one_of(near)}?)" if near else ""
        raise ZooError(
            f"unknown --sort key '{name}'{hint}.",
            expected="one of " + "; ".join(f"{k} ({s.describes})" for k, s in SORTS.items()),
            fix=f"pass --sort {DEFAULT} (or another of those)",
            got=name,
        )
    if name == HELD_OUT and not held_out:
        raise ZooError(
            "--sort held-out ranks runs by their accuracy on a held-out folder, and no "
            "folder was given.",
            expected="--on FOLDER: labelled images, one subfolder per class",
            fix="pass --on FOLDER, or another --sort",
            got=name,
        )
    return SORTS[name]


def ranked(rows: Sequence[Mapping[str, Any]], key: SortKey) -> list[dict[str, Any]]:
    """``rows`` best first by ``key`` (ties keep their order), each with its ``rank``."""

    def order(row: Mapping[str, Any]) -> tuple[bool, Any]:
        value = key.value(row)
        if value is None:
            return True, 0
        return False, -value if key.higher_first else value

    return [{"rank": i, **row} for i, row in enumerate(sorted(rows, key=order), 1)]


def check_folder(folder: Path) -> None:
    """Refuse a held-out folder that is not one, before any model loads.

    Raises:
        ZooError: ``folder`` is not a folder.
    """
    if not folder.is_dir():
        raise ZooError(
            f"{folder} is not a folder.",
            expected="--on FOLDER: labelled images, one subfolder per class of the runs",
            fix="pass the folder holding the class folders",
            got=str(folder),
        )


def on_folder(
    records: Sequence[RunRecord],
    labels: Sequence[str],
    folder: Path,
    registry: Registry | None,
    on_run: Callable[[str], None] | None = None,
) -> tuple[list[dict[str, Any] | None], list[str]]:
    """Each run's scores on ``folder`` (``None``: the run saved no model), and warnings.

    The confusion matrix of each goes to its run directory, as ``zoo evaluate RUN
    FOLDER`` writes it.

    Raises:
        ZooError: a run's model cannot be loaded, or ``folder`` does not fit its classes;
            the message names the run.
    """
    scores: list[dict[str, Any] | None] = []
    warnings: list[str] = []
    for record, label in zip(records, labels, strict=True):
        if not (record.path / MODEL).is_file():
            warnings.append(
                f"run {label} saved no model (status {record.status}): it is not ranked on {folder}"
            )
            scores.append(None)
            continue
        if on_run is not None:
            on_run(label)
        score, notes = _scored(record.path, label, folder, registry)
        scores.append(score)
        warnings += [note for note in notes if note not in warnings]
    return scores, warnings


def _scored(
    run_dir: Path, label: str, folder: Path, registry: Registry | None
) -> tuple[dict[str, Any], list[str]]:
    from zoo.results import evaluate
    from zoo.results.predict import load_trained

    try:
        trained = load_trained(run_dir, registry)
        report = evaluate.on_folder(trained, folder, batch_size=trained.batch_size, output=run_dir)
    except ZooError as exc:
        raise ZooError(
            f"run {label} ({run_dir}) cannot be ranked on {folder}: {exc.what}",
            expected=exc.expected,
            fix=exc.fix,
            got=exc.got,
        ) from None
    found = report.evaluation
    notes = [f"run {label}: {text}" for text in [*trained.warnings, *report.warnings]]
    if report.errors:
        notes.append(f"skipped {len(report.errors)} unreadable files in {folder}")
    score = {
        "accuracy": found.accuracy,
        "macro_f1": found.macro("f1"),
        "examples": found.examples,
        "unreadable": len(report.errors),
        "figure": found.figure,
    }
    return score, notes
