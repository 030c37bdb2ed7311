"""The README's table of backbones, made from zoo's registry.

    python tools/readme_backbones.py          # rewrite the table in README.md
    python tools/readme_backbones.py --check  # exit 1 if the table is not current

One row per built-in backbone, from its card (``zoo.Backbone``'s family, parameters,
native image size and source), so the table says what ``zoo info`` says. It needs
keras-hub installed (``pip install 'zoo[hub]'``): without it the KerasHub rows would
be missing. ``tests/test_docs.py`` keeps the README's table current.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import zoo

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN = "<!-- backbones: made by tools/readme_backbones.py from the registry; do not edit -->"
END = "<!-- end of backbones -->"


def table(registry: zoo.Registry) -> str:
    """The Markdown table of ``registry``'s backbones, grouped by family."""
    rows = [
        "| backbone | family | parameters | native size | source |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    cards = [(e, e.component) for e in registry.entries("backbone")]
    for entry, card in sorted(cards, key=lambda pair: _order(pair[1], pair[0].name)):
        assert isinstance(card, zoo.Backbone)
        cells = (
            f"`{entry.name}`",
            card.family or "any",
            f"{card.parameters:,}" if card.parameters else "-",
            str(card.native_image_size or "-"),
            card.source or entry.plugin.name,
        )
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _order(card: object, name: str) -> tuple[bool, str, str]:
    """Families alphabetically, then names; backbones of any family last."""
    family = card.family if isinstance(card, zoo.Backbone) else ""
    return (not family, family.lower(), name)


def with_table(readme: str, registry: zoo.Registry) -> str:
    """``readme`` with the text between the markers replaced by the current table."""
    head, _, rest = readme.partition(BEGIN)
    if not rest or END not in rest:
        raise SystemExit(f"{README} has no section between {BEGIN!r} and {END!r}")
    return f"{head}{BEGIN}\n{table(registry)}\n{END}{rest.partition(END)[2]}"


def builtin_registry() -> zoo.Registry:
    """zoo's built-in plugins, all available: a missing keras-hub stops the tool."""
    registry = zoo.load_registry(zoo.LoadOptions(builtins_only=True))
    missing = [p for p in registry.plugins if p.status != "ok"]
    if missing:
        raise SystemExit(
            "the table needs every built-in plugin: "
            + "; ".join(f"{p.name} {p.error} ({p.install or 'see zoo plugins'})" for p in missing)
        )
    return registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    current = with_table(text, builtin_registry())
    if args.check:
        print("README.md's backbones are current" if current == text else "README.md is stale")
        return 0 if current == text else 1
    README.write_text(current, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
