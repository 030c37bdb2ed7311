"""The ``zoo`` command line.

Only the standard library, pluggy and rich load here; TensorFlow is imported by the
commands that train or build models, so ``zoo list`` and ``zoo --help`` are instant.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo import __version__, _tf, console
from zoo.components import KINDS
from zoo.errors import RunFailed, ZooError
from zoo.plugins import LoadOptions, load_registry
from zoo.registry import Entry, Registry

LISTABLE = ("datasets", "backbones", "heads", "plugins", "recipes")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zoo`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return 2
    _tf.set_verbose(args.verbose)
    try:
        return args.handler(args)
    except ZooError as exc:
        if args.verbose and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__)
        console.error(exc)
        return exc.exit_code
    except RunFailed as exc:
        console.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own logs and tracebacks"
    )
    common.add_argument(
        "--registry",
        metavar="PATH",
        help="a user registry.toml (default: $ZOO_REGISTRY, then ./registry.toml)",
    )
    common.add_argument(
        "--disable-plugin",
        action="append",
        default=[],
        metavar="NAME",
        help="skip this plugin (repeatable; also $ZOO_DISABLE_PLUGINS=a,b)",
    )
    common.add_argument(
        "--builtins-only", action="store_true", help="load zoo's own plugins only (for debugging)"
    )

    parser = argparse.ArgumentParser(
        prog="zoo",
        description="A plugin-based model zoo for transfer learning on TensorFlow 2 / Keras 3.",
        epilog="Start with: zoo list, then zoo run shapes small_cnn gap_sigmoid",
    )
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    lister = sub.add_parser(
        "list", parents=[common], help="list datasets, backbones, heads, plugins, recipes"
    )
    lister.add_argument(
        "what",
        nargs="?",
        choices=LISTABLE,
        help="one kind only (default: all components and recipes)",
    )
    lister.add_argument("--json", action="store_true", help="print JSON instead of tables")
    lister.set_defaults(handler=cmd_list)

    info = sub.add_parser(
        "info", parents=[common], help="one component's description and parameters"
    )
    info.add_argument("name", help="a component name, or PLUGIN:NAME")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=cmd_info)

    runner = sub.add_parser(
        "run",
        parents=[common],
        help="train and evaluate DATASET BACKBONE HEAD",
        description="Train BACKBONE + HEAD on DATASET, evaluate it, and write a run directory.",
        epilog="example: zoo run shapes small_cnn gap_sigmoid --epochs 3 "
        "--set dataset.num_images=500",
    )
    runner.add_argument(
        "names", nargs="*", metavar="DATASET BACKBONE HEAD", help="the three components"
    )
    runner.add_argument(
        "--recipe", help="run a recipe from a registry file instead of naming components"
    )
    runner.add_argument("--epochs", type=int, help="passes over the training split")
    runner.add_argument("--batch-size", type=int, help="images per step (the global batch)")
    runner.add_argument("--image-size", type=int, help="resize images to SIZE x SIZE")
    runner.add_argument("--learning-rate", type=float, help="the optimizer's learning rate")
    runner.add_argument("--optimizer", help="adam, sgd or rmsprop")
    runner.add_argument("--seed", type=int, help="seeds shuffling and initialisation")
    runner.add_argument(
        "--output",
        type=Path,
        default=Path("runs"),
        metavar="DIR",
        help="where run directories go (default: ./runs)",
    )
    runner.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KIND.PARAM=VALUE",
        help="set a component parameter, e.g. --set backbone.weights=none (repeatable)",
    )
    runner.add_argument(
        "--dry-run",
        action="store_true",
        help="check the combination and print the model summary, then stop",
    )
    runner.add_argument(
        "--json", action="store_true", help="print the run's metrics as JSON at the end"
    )
    runner.set_defaults(handler=cmd_run)
    return parser


def _registry(args: argparse.Namespace) -> Registry:
    registry = load_registry(
        LoadOptions(
            registry=args.registry,
            disable=args.disable_plugin,
            builtins_only=args.builtins_only,
        )
    )
    for plugin in registry.plugins:
        if plugin.status == "failed":
            console.warning(f"plugin '{plugin.name}' ({plugin.package}) skipped: {plugin.error}")
    for warning in registry.warnings:
        console.warning(warning)
    return registry


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    wanted = [args.what] if args.what else [f"{k}s" for k in KINDS] + ["recipes"]
    if args.json:
        console.print_json(
            {what: _listing(registry, what) for what in wanted}
            if not args.what
            else _listing(registry, args.what)
        )
        return 0
    for what in wanted:
        if what == "plugins":
            console.plugins(registry.plugins)
        elif what == "recipes":
            console.recipes(registry.recipes())
        else:
            console.components(what[:-1], registry.entries(what[:-1]))
    return 0


def _listing(registry: Registry, what: str) -> list[dict[str, Any]]:
    if what == "plugins":
        return [
            {
                "name": p.name,
                "package": p.package,
                "version": p.version,
                "source": p.source,
                "location": p.location,
                "status": p.status,
                "error": p.error,
                "components": list(p.components),
            }
            for p in registry.plugins
        ]
    if what == "recipes":
        return [
            {
                "name": r.name,
                "description": r.description,
                "dataset": r.dataset,
                "backbone": r.backbone,
                "head": r.head,
                "settings": dict(r.settings),
                "params": {k: dict(v) for k, v in r.params.items()},
                "source": r.source,
            }
            for r in registry.recipes().values()
        ]
    return [entry_json(e) for e in registry.entries(what[:-1])]


def entry_json(entry: Entry) -> dict[str, Any]:
    """A component entry as plain data, for ``--json``."""
    defaults = entry.defaults
    data = {
        "kind": entry.kind,
        "name": entry.name,
        "qualified_name": entry.qualified_name,
        "description": entry.description,
        "plugin": entry.plugin.name,
        "package": entry.plugin.package,
        "version": entry.plugin.version,
        "source": entry.plugin.source,
        "params": [
            {
                "name": p.name,
                "type": p.type_name,
                "default": defaults.get(p.name),
                "required": p.required,
                "choices": list(p.choices) if p.choices else None,
                "help": p.help,
            }
            for p in entry.params
        ],
    }
    component = entry.component
    if entry.kind == "backbone":
        data["min_image_size"] = component.min_image_size  # type: ignore[attr-defined]
    if entry.kind == "head":
        data["min_classes"] = component.min_classes  # type: ignore[attr-defined]
        data["max_classes"] = component.max_classes  # type: ignore[attr-defined]
    return data


def cmd_info(args: argparse.Namespace) -> int:
    registry = _registry(args)
    found = registry.find(args.name)
    if args.json:
        console.print_json([entry_json(e) for e in found])
        return 0
    for entry in found:
        console.component_info(entry)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from zoo.engine import run
    from zoo.runconfig import resolve_run

    registry = _registry(args)
    resolved = resolve_run(
        registry,
        args.names,
        recipe=args.recipe,
        settings={
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "image_size": args.image_size,
            "learning_rate": args.learning_rate,
            "optimizer": args.optimizer,
            "seed": args.seed,
        },
        sets=args.sets,
    )
    console.tables_to_stderr(args.json)
    result = run(resolved, output=args.output, dry_run=args.dry_run, command=["zoo", *sys.argv[1:]])
    if args.json:
        console.print_json(
            {"run_dir": result.run_dir, "parameters": result.parameters, **result.metrics}
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
