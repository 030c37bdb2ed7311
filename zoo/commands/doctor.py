"""``zoo doctor``: versions, devices and the reason for a missing GPU, plugins, caches, disk."""

from __future__ import annotations

import argparse
from typing import Any

from zoo import console
from zoo.commands._common import registry_from
from zoo.console import doctor as console_doctor
from zoo.runtime import doctor

POSITION = 90


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "doctor",
        parents=[common],
        help="check this machine: versions, GPU (and why none), plugins, caches, disk",
        description="Report Python, TensorFlow, Keras, TFDS and plugin versions, the devices "
        "TensorFlow sees (and, without a GPU, the likeliest reason), the precision zoo "
        "trains in, each plugin's health, each cache's location and size, and free disk "
        "space. Exit code 0 when zoo can work here (warnings included), 1 on a problem.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # The report lists failed plugins and unusable caches.
    registry = registry_from(args, warn_failed=False, check_caches=False)
    found = doctor.examine(registry)
    if args.json:
        console.print_json(found.to_json())
    else:
        console_doctor.report(found.to_json())
    return 0 if found.healthy else 1
