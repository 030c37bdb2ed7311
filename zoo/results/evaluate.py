"""Evaluating a trained run: on its own test split again, or on a new labelled folder.

The run's model is loaded as ``zoo predict`` loads it (:func:`zoo.results.predict.load_trained`).
The test split is rebuilt from the run's ``config.json`` by the dataset plugin (its
values choose which data; where anything is written is this machine's choice:
:func:`zoo.downloads.readiness.from_run`), and resized and batched as training did; a new folder
holds one subfolder per class, named like the run's classes, and its images are read
as ``zoo predict`` reads them. Either way the predictions are scored by
:func:`zoo.model.scoring.evaluate`: confusion matrix and its figure (never through a link
leading out of its folder), per-class precision, recall and F1, the most confidently
wrong files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.data.files import find_files
from zoo.errors import ZooError, closest, one_of
from zoo.model import scoring
from zoo.registry import Registry
from zoo.results.predict import Trained
from zoo.storage import confine
from zoo.storage.runs import CONFIG, METRICS, RESTORE, RunRecord, read_run

if TYPE_CHECKING:
    from zoo.components import Splits


@dataclass
class Report:
    """An evaluation, the files that could not be read, and what to keep in mind."""

    evaluation: scoring.Evaluation
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def figure_path(output: Path, name: str) -> Path:
    """``confusion_matrix-<name>.png`` in ``output``; the run's own figure is not touched.

    Raises:
        ZooError: it is a symbolic link leading out of ``output`` (a run directory from
            someone else may hold one), which the figure would replace what it points at.
    """
    stem = Path(scoring.FIGURE).stem
    path = output / f"{stem}-{Path(name).name or 'folder'}.png"
    confine.inside(
        path,
        output,
        what="the confusion matrix figure",
        got=str(path),
        fix=f"remove the link {path} (zoo writes the figure anew), or pass --output DIR",
    )
    return path


def on_test_split(
    registry: Registry,
    trained: Trained,
    *,
    batch_size: int,
    output: Path,
    on_batch: Callable[[int], None] | None = None,
) -> Report:
    """Rebuild the run's dataset and score the model on its test split.

    Raises:
        ZooError: the dataset cannot be rebuilt (missing data, plugin gone), or its
            classes are not the run's.
    """
    from zoo.data import pipeline

    figure = figure_path(output, "test")
    fix = "evaluate on a labelled folder instead: zoo evaluate RUN FOLDER"
    splits, record = rebuilt_splits(registry, trained, fix)
    recorded = (record.metrics.get("dataset") or {}).get("fingerprint")
    warnings = []
    if recorded and splits.fingerprint and recorded != splits.fingerprint:
        warnings.append(
            "the data changed since the run was trained: its test split may now hold "
            "other examples, even some the model was trained on"
        )
    batches = pipeline.batches(
        splits.test,
        image_size=trained.image_size,
        batch_size=batch_size,
        size=splits.sizes.get("test"),
    )

    def predictions() -> Iterator[tuple[Any, Any]]:
        for step, (images, labels) in enumerate(batches):
            yield trained.model.predict_on_batch(images), labels.numpy()
            if on_batch is not None:
                on_batch(step)

    files = splits.files.get("test")
    evaluation = scoring.evaluate("test", predictions(), trained.class_names, files, figure)
    return Report(evaluation, warnings=warnings)


def rebuilt_splits(registry: Registry, trained: Trained, fix: str) -> tuple[Splits, RunRecord]:
    """The run's dataset, rebuilt from its config.json by its plugin, and its records.

    Args:
        fix: What to do instead when the dataset's classes are not the run's.

    Raises:
        ZooError: the dataset cannot be rebuilt (missing data, plugin gone), or its
            classes are not the run's.
    """
    from zoo.downloads import readiness
    from zoo.model.assemble import build_splits

    record = test_split_record(trained.run_dir)
    splits = build_splits(readiness.from_run(registry, record))
    if list(splits.class_names) != trained.class_names:
        raise ZooError(
            "the run's dataset now has other classes than the run was trained on.",
            expected=f"the classes in {trained.run_dir / METRICS}: {trained.class_names}",
            fix=fix,
            got=list(splits.class_names),
        )
    return splits, record


def test_split_record(run_dir: Path) -> RunRecord:
    """The run's records, checked for rebuilding its test split (before a model loads).

    Raises:
        ZooError: config.json is missing or damaged.
    """
    record = read_run(run_dir)
    record.require(
        CONFIG,
        "rebuilding the run's test split needs",
        fix=f"{RESTORE[CONFIG]}; or evaluate on labelled images: zoo evaluate RUN FOLDER",
    )
    return record


def labelled_files(folder: Path, class_names: Sequence[str]) -> tuple[list[Path], list[int]]:
    """The images of ``folder``, one subfolder per class, and their labels.

    Raises:
        ZooError: no such folder; a subfolder that is not one of the run's classes; a
            class without a subfolder; no images at all.
    """
    if not folder.is_dir():
        raise ZooError(
            f"{folder} is not a folder.",
            expected="a folder with one subfolder of labelled images per class of the run",
            fix="pass the folder holding the class folders",
            got=str(folder),
        )
    present = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    _check_classes(folder, present, class_names)
    files, labels = [], []
    for label, name in enumerate(class_names):
        found = find_files(folder / name).images
        files += found
        labels += [label] * len(found)
    if not files:
        raise ZooError(
            f"{folder} holds no images in its class folders.",
            expected="image files (JPEG, PNG, WebP, TIFF...) in the class folders",
            fix="add labelled images to the class folders",
            got=present,
        )
    return files, labels


def _check_classes(folder: Path, present: list[str], class_names: Sequence[str]) -> None:
    unknown = [name for name in present if name not in class_names]
    if unknown:
        raise ZooError(
            f"{folder} has folders that are not classes of the run: "
            f"{', '.join(map(_suggest(class_names), unknown))}.",
            expected=f"one subfolder per class of the run: {', '.join(class_names)}",
            fix="rename or remove those folders (class names are case-sensitive)",
            got=unknown,
        )
    missing = [name for name in class_names if name not in present]
    if missing:
        loose = len(find_files(folder).images) if not present else 0
        held = f" It holds {loose} images directly." if loose else ""
        raise ZooError(
            f"{folder} has no folder for the classes {', '.join(missing)}.{held}",
            expected=f"one subfolder per class of the run: {', '.join(class_names)} "
            "(an empty folder says there are no images of that class)",
            fix="add the missing class folders; to classify unlabelled images, use zoo predict",
            got=present,
        )


def _suggest(class_names: Sequence[str]) -> Callable[[str], str]:
    def hint(name: str) -> str:
        near = closest(name, class_names)
        return f"'{name}' (did you mean {one_of(near)}?)" if near else f"'{name}'"

    return hint


def on_folder(
    trained: Trained,
    folder: Path,
    *,
    batch_size: int,
    output: Path,
    on_batch: Callable[[int], None] | None = None,
) -> Report:
    """Score the model on a labelled folder; unreadable images are skipped and named."""
    import numpy as np

    from zoo.results.predict import predict_files

    figure = figure_path(output, str(folder.resolve()))
    files, labels = labelled_files(folder, trained.class_names)
    label_of = dict(zip(files, labels, strict=True))
    classes = {name: i for i, name in enumerate(trained.class_names)}
    result = predict_files(
        trained, files, top_k=len(classes), batch_size=batch_size, on_batch=on_batch
    )
    if not result.predicted:
        raise ZooError(
            f"none of the {len(files)} images in {folder} could be read.",
            expected="image files zoo can decode (JPEG, PNG, WebP, TIFF...)",
            fix="check the files; the first one failed with: " + result.errors[0]["error"],
            got=result.errors[0]["file"],
        )
    probabilities = np.zeros((len(result.predicted), len(classes)))
    for row, entry in enumerate(result.predicted):
        for ranked in entry["top_k"]:
            probabilities[row, classes[ranked["class"]]] = ranked["probability"]
    read = [Path(entry["file"]) for entry in result.predicted]
    truth = np.array([label_of[path] for path in read], dtype=int)
    evaluation = scoring.evaluate(
        str(folder),
        [(probabilities, truth)],
        trained.class_names,
        [str(path) for path in read],
        figure,
    )
    return Report(evaluation, errors=result.errors)
