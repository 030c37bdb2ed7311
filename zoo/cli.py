"""The ``zoo`` command line: the parser, common options, and error handling.

Only the standard library, pluggy and rich load here; TensorFlow is imported by the
commands that train or build models, so ``zoo list`` and ``zoo --help`` are instant.
Each command lives in ``zoo/commands/``.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from zoo import console
from zoo._version import __version__
from zoo.commands import command_modules
from zoo.errors import RunFailed, RunInterrupted, ZooError
from zoo.runtime import loader, patches


def script() -> NoReturn:
    """The ``zoo`` console script and ``python -m zoo``: :func:`main` in a process of its
    own, which tunes Python's garbage collector for it (:mod:`zoo.runtime.patches`)."""
    with patches.command_process():
        code = main()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zoo`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return 2
    json_output = getattr(args, "json", False)
    try:
        with (
            console.python_warnings(),
            loader.quiet(args.verbose),
            console.tables_on_stderr(json_output),
        ):
            return args.handler(args)
    except ZooError as exc:
        if args.verbose and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__)
        console.error(exc)
        return exc.exit_code
    except RunFailed as exc:
        console.error(exc)
        return exc.exit_code
    except RunInterrupted as exc:  # the run has said what is saved; not what it could not
        for note in getattr(exc, "__notes__", ()):
            console.warning(note)
        return exc.exit_code
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130


def common_options() -> argparse.ArgumentParser:
    """Options every command takes: how plugins load, and how much to show."""
    common = argparse.ArgumentParser(add_help=False)
    add = common.add_argument
    add("--verbose", action="store_true", help="show TensorFlow's own logs and tracebacks")
    add(
        "--registry",
        metavar="PATH",
        help="a user registry.toml (default: $ZOO_REGISTRY, then ./registry.toml)",
    )
    add(
        "--disable-plugin",
        action="append",
        default=[],
        metavar="NAME",
        help="skip this plugin (repeatable; also $ZOO_DISABLE_PLUGINS=a,b)",
    )
    add("--builtins-only", action="store_true", help="load zoo's own plugins only (debugging)")
    return common


class CommandParser(argparse.ArgumentParser):
    """A command's parser, which rejects arguments it does not know itself, so the
    error shows ``zoo COMMAND``'s usage; argparse leaves them to the top-level parser."""

    def parse_known_args(  # type: ignore[override]  # typeshed overloads; same behaviour
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo",
        description="A plugin-based model zoo for transfer learning on TensorFlow 2 / Keras 3.",
        epilog="Start with: zoo list, then zoo run shapes small_cnn gap_sigmoid",
    )
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=CommandParser)
    common = common_options()
    for module in command_modules():
        module.add(sub, common)
    return parser


if __name__ == "__main__":
    sys.exit(main())
