"""Sizes in bytes, as people write and read them: ``512MB``, ``1.5 GB``."""

from __future__ import annotations

import re

from zoo.errors import ZooError

_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_size(text: str | int, flag: str = "--feature-cache-memory") -> int:
    """``"512MB"`` as bytes (binary units); a number is bytes already.

    Raises:
        ZooError: not a number with an optional unit B, KB, MB, GB or TB; the message
            names ``flag`` (or wherever the size came from).
    """
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?B?)\s*", str(text).upper())
    if not found:
        raise ZooError(
            f"{flag} takes a size such as 512MB or 4GB.",
            expected="a number with an optional unit: B, KB, MB, GB or TB",
            fix=f"pass e.g. {flag} 2GB",
            got=text,
        )
    number, unit = found.groups()
    unit = unit if unit.endswith("B") or not unit else unit + "B"
    return int(float(number) * _UNITS[unit])


def format_size(size: float) -> str:
    """Bytes as people read them: ``"1.5 GB"`` (binary units, as :func:`parse_size`)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
