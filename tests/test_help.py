"""Every ``--help`` works: each command's, run as users run it, and every help string
survives argparse's ``%`` formatting (a bare ``%`` in a help string crashed
``zoo run --help`` with ``TypeError: %o format``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest
from helpers import run_zoo

from zoo.cli import build_parser


def parsers(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """``parser`` and every subcommand's parser under it, with the words that reach it."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*words, name))


COMMANDS = [words for words, _ in parsers(build_parser())]


def test_the_commands_are_found_in_the_parser():
    assert {("run",), ("predict",), ("cache", "list"), ()} <= set(COMMANDS)


@pytest.mark.parametrize("words", COMMANDS, ids=lambda words: " ".join(("zoo", *words)))
def test_every_commands_help_prints_and_exits_0(words: tuple[str, ...]):
    result = run_zoo(*words, "--help")

    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith("usage: zoo")


@pytest.mark.parametrize("words", COMMANDS, ids=lambda words: " ".join(("zoo", *words)))
def test_every_help_string_survives_argparses_formatting(words: tuple[str, ...]):
    parser = dict(parsers(build_parser()))[words]
    formatter = parser._get_formatter()

    for action in parser._actions:
        if action.help and action.help is not argparse.SUPPRESS:
            formatter._expand_help(action)  # what argparse does to print it: help % params
