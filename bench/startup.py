"""Benchmark 4: ``zoo list`` against ``python -c "import tensorflow"``."""

from __future__ import annotations

import subprocess
import sys

from bench.context import Context, zoo_command
from bench.measure import stat
from bench.report import Section, Target, seconds, spread

#: Always at least this many runs a side: each takes a second or a few.
MIN_REPEATS = 3


def startup(ctx: Context) -> Section:
    repeats = max(MIN_REPEATS, ctx.settings.small_repeats)
    commands = {
        "zoo list": [*zoo_command(), "list"],
        "import tensorflow": [sys.executable, "-c", "import tensorflow"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            measured, _ = ctx.run(name.replace(" ", "-"), commands[name])
            times[name].append(measured.seconds)
    zoo, tf = stat(times["zoo list"]), stat(times["import tensorflow"])
    pairs = zip(times["zoo list"], times["import tensorflow"], strict=True)
    ratios = stat([z / t for z, t in pairs])
    section = Section(
        title="4. Start-up",
        what="Wall time of `zoo list` (the installed script) against "
        '`python -c "import tensorflow"`, each a fresh process.',
        header=["command", "median", "spread"],
        rows=[
            ["`zoo list`", seconds(zoo), spread(zoo)],
            ['`python -c "import tensorflow"`', seconds(tf), spread(tf)],
            ["ratio", f"{ratios.median:.2f}", spread(ratios, "", 2)],
        ],
        targets=[Target("at most 0.25 of importing TensorFlow", f"{ratios.median:.2f}",
                        ratios.median <= 0.25)],
    )  # fmt: skip
    if ratios.median > 0.25:
        section.notes.append(
            "Why the target is missed; the slowest imports of `zoo list` "
            "(`python -X importtime`, cumulative):\n\n" + import_profile()
        )
    return section


def import_profile(top: int = 8) -> str:
    """The top-level modules `zoo list` spends most time importing, as a markdown list."""
    argv = [sys.executable, "-X", "importtime", "-m", "zoo", "list"]
    stderr = subprocess.run(argv, capture_output=True, text=True, check=False).stderr
    found = []
    for line in stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2].startswith("  "):
            found.append((int(parts[1]), parts[2].strip()))
    found.sort(reverse=True)
    return "\n".join(f"- `{name}`: {micro / 1e6:.2f} s" for micro, name in found[:top])
