"""What TensorFlow Datasets downloads for a dataset, declared for ``zoo fetch`` and
``zoo list`` without importing TFDS.

The files come from TFDS's own checksums table, read from its package folder. They go
to the manual directory, by default TFDS's own, ``DATA_DIR/downloads/manual``, where TFDS
looks for them by name before downloading, so a fetched archive needs no ``manual_dir``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import zoo


def tfds_downloads(
    name: str, params: Mapping[str, Any], prepared: Path | None = None
) -> list[zoo.Download]:
    """What TFDS downloads for ``name``, as its own checksums table records it, placed in
    the manual directory, where TFDS looks for each file by name before downloading it.

    The table is read from the installed package's files; TFDS itself is not imported.
    The manual directory is ``manual_dir``, else TFDS's default, ``DATA_DIR/downloads/manual``;
    it is each file's ``root``, so a file name cannot lead out of it. What TFDS prepares
    from them is ``prepared``, by default the dataset's folder in the data directory
    (so a run directory's ``data_dir`` is held to this machine's folders:
    :func:`zoo.downloads.readiness.from_run`).

    Raises:
        ZooError: ``name`` is no plain name, TFDS is not installed, has no table for it, or
            records no file name for one of its files (so TFDS would not find it in a
            manual directory).
    """
    manual = _absolute(params["manual_dir"]) or data_dir(params) / "downloads" / "manual"
    rows = _checksums(_plain(name))
    unnamed = [url for url, _, _, filename in rows if not filename]
    if not rows or unnamed:
        raise zoo.ZooError(
            f"TensorFlow Datasets records no files to fetch for '{name}'"
            + (f" (no file name for {unnamed[0]})." if unnamed else "."),
            expected="a TFDS dataset whose checksums table names its files",
            fix="prepare it with `tfds build` where there is internet and copy the data "
            "directory, then pass --set dataset.data_dir=DIR",
            got=name,
        )
    prepared = prepared or data_dir(params) / name
    return [
        zoo.Download(filename, url, manual / filename, size, sha256, prepared=prepared, root=manual)
        for url, size, sha256, filename in rows
    ]


def _plain(name: str) -> str:
    """``name`` when it is a plain name, not a path to a table elsewhere (in a bundle, say).

    Raises:
        ZooError: ``name`` has a slash, a backslash or NUL, or is ``..``, ``.`` or empty.
    """
    return zoo.plain_name(
        name,
        what=f"the TFDS dataset name '{name}'",
        folder=Path("tensorflow_datasets") / "datasets",
        fix="give the dataset's name alone, for example tf_flowers (zoo fetch reads the "
        "files to download from TFDS's table for that name; a bundle's values are in its "
        "zoo-bundle.json: install only bundles from people you trust)",
    )


def _checksums(name: str) -> list[tuple[str, int, str, str]]:
    """``(url, size, sha256, file name)`` from TFDS's table for ``name``, found without
    importing TFDS: ``datasets/NAME/checksums.tsv`` or the older ``url_checksums/NAME.txt``."""
    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None or not spec.submodule_search_locations:
        return []
    package = Path(next(iter(spec.submodule_search_locations)))
    legacy = package / "url_checksums" / f"{name}.txt"
    for table in (package / "datasets" / name / "checksums.tsv", legacy):
        if table.is_file():
            lines = table.read_text(encoding="utf-8").splitlines()
            # TFDS's format: tab-separated, or (older) "URL SIZE SHA256" with spaces.
            rows = [
                line.split("\t") if "\t" in line else line.rsplit(" ", 2)
                for line in lines
                if line.strip() and not line.startswith("#")
            ]
            return [(r[0], int(r[1]), r[2], r[3] if len(r) > 3 else "") for r in rows]
    return []


def data_dir(params: Mapping[str, Any]) -> Path:
    return _absolute(params["data_dir"]) or zoo.tfds_data_dir()


def _absolute(value: str | None) -> Path | None:
    return Path(value).expanduser().absolute() if value else None
