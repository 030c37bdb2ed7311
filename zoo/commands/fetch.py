"""``zoo fetch``: download what components need, write bundles, install them offline."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zoo import console
from zoo.commands._common import registry_from
from zoo.console import transfers
from zoo.downloads import bundles, readiness
from zoo.errors import ZooError

POSITION = 35


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "fetch",
        parents=[common],
        help="download what datasets, backbones or recipes need; bundles for offline machines",
        description="Download the files the named components declare (ImageNet weights, "
        "dataset archives, KerasHub presets) into the caches their libraries read, checking "
        "each file's size and checksum. --to DIR writes them into a portable bundle instead; "
        "zoo fetch --from DIR installs a bundle on a machine without internet.",
        epilog="Example: zoo fetch tutorial_transfer --to /media/usb/zoo-bundle, then on the "
        "offline machine: zoo fetch --from /media/usb/zoo-bundle",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="datasets, backbones, heads or recipes"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KIND.PARAM=VALUE",
        help="a component parameter, as zoo run takes it (--set backbone.preset=NAME)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run", action="store_true", help="list what would be fetched and what is present"
    )
    mode.add_argument(
        "--to", type=Path, metavar="DIR", help="write a bundle (files and manifest) into DIR"
    )
    mode.add_argument(
        "--from",
        dest="bundle",
        type=Path,
        metavar="DIR",
        help="install the bundle in DIR into this machine's caches, verifying every file",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    registry = registry_from(args)
    if args.bundle is not None:
        _no_names(args)
        rows = bundles.from_bundle(args.bundle, registry)
        title = f"installed from {args.bundle}"
    else:
        wanted = [_needs(t) for t in readiness.targets(registry, _names(args), args.set)]
        if args.to is not None:
            rows, title = bundles.into_bundle(wanted, args.to), f"bundle {args.to}"
        else:
            rows = bundles.into_caches(wanted, dry_run=args.dry_run)
            title = "would fetch" if args.dry_run else "fetched"
        empty = [n.target.label for n in wanted if not n.downloads]
        if empty:
            console.status("nothing to download for " + ", ".join(empty))
    if args.json:
        console.print_json(rows)
    elif rows:
        transfers.files(title, rows)
    return 0


def _needs(target: readiness.Target) -> readiness.Needs:
    found = readiness.needs(target)
    if found.error is not None:
        raise found.error
    return found


def _names(args: argparse.Namespace) -> list[str]:
    if not args.names:
        raise ZooError(
            "zoo fetch needs to know what to fetch.",
            expected="dataset, backbone, head or recipe names, or --from DIR",
            fix="for example: zoo fetch cats_vs_dogs resnet50; zoo list shows the names",
        )
    return list(args.names)


def _no_names(args: argparse.Namespace) -> None:
    if args.names or args.set:
        raise ZooError(
            "zoo fetch --from installs a bundle as written; it takes no names or --set.",
            expected="zoo fetch --from DIR",
            fix="drop the names, or write a new bundle with them: zoo fetch NAME... --to DIR",
            got=" ".join([*args.names, *args.set]),
        )
