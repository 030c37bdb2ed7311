"""``zoo cache list|clear|prune``: the frozen-feature cache folder, what it holds, its size.

Entries in use by a running process are never removed (:mod:`zoo.train.features.store`); the
size limit comes from ``--max-size``, else a registry file's ``[cache] max_size``,
else 10GB, as for ``zoo run``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import console
from zoo.commands._common import cache_max_size, registry_from
from zoo.errors import ZooError
from zoo.storage import caches
from zoo.storage.sizes import format_size

if TYPE_CHECKING:
    from zoo.train.features.store import Entry, Pruned

POSITION = 75


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "cache",
        parents=[common],
        help="list, clear or prune the frozen-feature cache",
        description="The features of frozen backbones that runs cached: list them, remove "
        "them all, or remove the least recently used beyond a size. Entries a running "
        "process uses are never removed.",
        epilog="examples: zoo cache list; zoo cache prune --max-size 2GB; zoo cache clear",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    folder = argparse.ArgumentParser(add_help=False)
    folder.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="the cache folder (default: $ZOO_CACHE_DIR/features, else ~/.cache/zoo/features)",
    )
    listing = actions.add_parser(
        "list",
        parents=[common, folder],
        help="each entry: dataset and backbone with their parameters, augmentation, size, last use",
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=list_entries)
    clearing = actions.add_parser(
        "clear", parents=[common, folder], help="remove every entry not in use"
    )
    clearing.set_defaults(handler=clear)
    pruning = actions.add_parser(
        "prune",
        parents=[common, folder],
        help="remove the least recently used entries beyond a size",
    )
    pruning.add_argument(
        "--max-size",
        metavar="SIZE",
        help="what may stay, e.g. 2GB (default: [cache] max_size of a registry file, else 10GB)",
    )
    pruning.set_defaults(handler=prune)


def _directory(args: argparse.Namespace) -> Path:
    """The cache folder: ``--dir``, else where ``$ZOO_CACHE_DIR`` says, checked first."""
    from zoo.train.features.cache import default_directory

    if args.dir is None:
        caches.check()
        return default_directory()
    problem = caches.Cache("features", args.dir, "--dir", read_only=True).problem()
    if problem:
        raise ZooError(
            f"--dir cannot be a feature cache: {problem}.",
            expected="a folder (or a path where one can be made)",
            fix="pass --dir a folder, or leave it out for the default",
            got=str(args.dir),
        )
    return args.dir


def list_entries(args: argparse.Namespace) -> int:
    from zoo.train.features import store

    directory = _directory(args)
    found = store.entries(directory)
    total = sum(entry.size for entry in found)
    if args.json:
        console.print_json(
            {
                "directory": str(directory),
                "size": total,
                "entries": [entry.to_json() for entry in found],
            }
        )
        return 0
    defaults = _dataset_defaults(registry_from(args, warn_failed=False))
    rows = [_row(entry, defaults) for entry in found]
    noun = "entry" if len(found) == 1 else "entries"
    title = f"feature cache {directory}: {len(found)} {noun}, {format_size(total)}"
    console.cache_entries(rows, title)
    return 0


def _dataset_defaults(registry: Any) -> dict[str, dict[str, Any]]:
    """Each dataset's defaults, by name, so a row shows only what a run chose."""
    return {e.name: e.defaults for e in registry.entries("dataset")}


def _row(entry: Entry, dataset_defaults: dict[str, dict[str, Any]]) -> list[str]:
    about = entry.about  # read from the entry's meta.json: shown, never trusted
    what = [f"{about['image_size']} px" if "image_size" in about else ""]
    what.append("pooled" if about.get("pooled") else "map")
    if about.get("runtime"):
        what.append(f"{about['runtime']} {about.get('precision') or ''}".strip())
    if about.get("views"):
        what.append(f"{about['views']} augmented views")
    used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_use))
    return [
        entry.key[:12],
        _with_params(about.get("dataset", "?"), about.get("dataset_params"), dataset_defaults),
        _with_params(about.get("backbone", "?"), about.get("backbone_params")),
        str(about.get("split", "?")),
        ", ".join(filter(None, what)),
        format_size(entry.size),
        used + (" (in use)" if entry.in_use else ""),
    ]


def _with_params(name: Any, params: Any, defaults: dict[str, dict[str, Any]] | None = None) -> str:
    """``image_folder (path=/data/pets)``, ``resnet50 (weights=imagenet, trainable=False)``:
    the component and where its data or weights came from.

    A backbone shows all its parameters (few: its weights or preset, and trainable); a
    dataset those that differ from its defaults. Entries written before zoo recorded
    parameters show the name alone.
    """
    if not isinstance(params, dict):
        return str(name)
    usual = (defaults or {}).get(str(name), {})
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if k not in usual or usual[k] != v)
    return f"{name} ({shown})" if shown else str(name)


def clear(args: argparse.Namespace) -> int:
    from zoo.train.features import store

    directory = _directory(args)
    _report(store.clear(directory), directory)
    return 0


def prune(args: argparse.Namespace) -> int:
    from zoo.train.features import store

    registry = registry_from(args)
    limit = cache_max_size(registry, args.max_size, "--max-size")
    directory = _directory(args)
    _report(store.prune(directory, limit), directory)
    return 0


def _report(pruned: Pruned, directory: Path) -> None:
    count = len(pruned.removed)
    noun = "entry" if count == 1 else "entries"
    line = f"removed {count} {noun} ({format_size(pruned.freed)}) from {directory}; "
    line += f"{format_size(pruned.size)} left"
    if pruned.kept_in_use:
        kept = len(pruned.kept_in_use)
        line += f"; kept {kept} in use by a running process"
    console.status(line)
