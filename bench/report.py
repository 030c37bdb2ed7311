"""Writing BENCHMARKS.md: the machine, the versions, and one section per benchmark."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from bench.measure import Stat

LIBRARIES = ("zoo", "tensorflow", "keras", "openvino", "numpy", "pillow")


@dataclass(frozen=True)
class Target:
    """A target of the issue and whether this invocation met it."""

    text: str
    measured: str
    met: bool


@dataclass
class Section:
    """One benchmark's part of the report."""

    title: str
    what: str
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # more markdown (a profile table)
    summary: str = ""  # the summary's line for a benchmark without targets


def seconds(value: Stat) -> str:
    return f"{value.median:.2f} s"


def spread(value: Stat, unit: str = "s", digits: int = 2) -> str:
    if len(value.values) == 1:
        return "1 run"
    span = f"{value.low:.{digits}f}–{value.high:.{digits}f}" + (f" {unit}" if unit else "")
    return f"{span} ({value.spread:.0%}, n={len(value.values)})"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def machine(gpus: list[str] | None) -> list[list[str]]:
    """Rows describing this machine (Linux's /proc files where available)."""
    gpu = "not probed" if gpus is None else (", ".join(gpus) or "none (TensorFlow sees no GPU)")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        ["CPU", _cpu_model()],
        ["cores", f"{os.cpu_count()} logical, {usable} usable by this process"],
        ["memory", _memory()],
        ["GPU", gpu],
        ["system", f"{platform.system()} {platform.release()}, Python {platform.python_version()}"],
    ]


def versions() -> list[list[str]]:
    rows = []
    for name in LIBRARIES:
        try:
            rows.append([name, metadata.version(name)])
        except metadata.PackageNotFoundError:
            rows.append([name, "not installed"])
    return rows


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def load_average() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def render(
    sections: list[Section],
    *,
    mode: str,
    command: str,
    settings: list[list[str]],
    gpus: list[str] | None,
    started: _dt.datetime,
    duration: float,
    loads: tuple[str, str],
) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` on {started:%Y-%m-%d at %H:%M} UTC; the invocation took "
        f"{duration / 60:.1f} minutes. Regenerate it with the same command.",
        "",
        *_mode_note(mode),
        "Each figure comes from its own process, run alternately with its peer's, so both "
        "see the same machine; every process starts with a cold zoo cache (a fresh "
        "`ZOO_CACHE_DIR`, so no cached features or image checks carry over). Ratios are "
        "the median of the per-pair ratios, measured side by side: on a shared machine "
        "absolute times drift, ratios hold. Spread is min–max over the repeats (and "
        "max−min relative to the median). Benchmarks 1–5, 7 and 9 run on the CPU "
        "(`CUDA_VISIBLE_DEVICES=-1`); benchmark 6 repeats 1–3 on a GPU when there is one.",
        "",
        "## Machine",
        "",
        *table(["", ""], machine(gpus)),
        f"| load average (1, 5, 15 min) | at start {loads[0]}; at end {loads[1]} |",
        "",
        "## Versions",
        "",
        *table(["library", "version"], versions()),
        "",
        "## Settings",
        "",
        *table(["setting", "value"], settings),
        "",
        "## Summary",
        "",
        *table(["benchmark", "target", "measured", "met"], _summary(sections)),
        "",
    ]
    for section in sections:
        lines += _section(section)
    return "\n".join(lines).rstrip() + "\n"


def _mode_note(mode: str) -> list[str]:
    if mode == "full":
        return []
    return [
        f"**This is a {mode}-mode run**: small sizes and single runs, so its ratios only "
        "show that everything works; `python -m bench --full` measures the issue's sizes "
        "(2,000 images, 7 epochs, repeated).",
        "",
    ]


def _summary(sections: list[Section]) -> list[list[str]]:
    rows = []
    for section in sections:
        for target in section.targets:
            rows.append([section.title, target.text, target.measured, _met(target.met)])
        if not section.targets and section.summary:
            rows.append([section.title, "—", section.summary, "—"])
    return rows


def _met(met: bool) -> str:
    return "yes" if met else "**no**"


def _section(section: Section) -> list[str]:
    lines = [f"## {section.title}", "", section.what, ""]
    if section.header:
        lines += [*table(section.header, section.rows), ""]
    for target in section.targets:
        met = _met(target.met)
        lines.append(f"- Target: {target.text}. Measured: {target.measured}. Met: {met}.")
    if section.targets:
        lines.append("")
    if section.extra:
        lines += [*section.extra, ""]
    for note in section.notes:
        lines += [note, ""]
    return lines


def merge(text: str, section: Section) -> str:
    """The report ``text`` with ``section`` in place of its namesake, summary rows too.

    A section ``text`` lacks goes at its end, its summary rows after the others; the rest
    of ``text`` stays as it was. So one benchmark can be rerun alone (``python -m bench
    exports``) without rerunning the others.
    """
    summary = ["| " + " | ".join(row) + " |" for row in _summary([section])]
    return _replace(text, section.title, _section(section), summary)


def keep(old: str, new: str, title: str) -> str:
    """``new`` with section ``title`` and its summary rows as ``old`` had them, when
    ``new`` lacks that section (a run that left it out)."""
    block, summary = _found(old, title)
    if not block or _found(new, title)[0]:
        return new
    return _replace(new, title, block, summary)


def _found(text: str, title: str) -> tuple[list[str], list[str]]:
    """Section ``title``'s lines in ``text`` (to the next ``## ``), and its summary rows."""
    lines = text.splitlines()
    summary = [line for line in lines if line.startswith(f"| {title} |")]
    if f"## {title}" not in lines:
        return [], summary
    start = lines.index(f"## {title}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), None)
    return lines[start:end], summary


def _replace(text: str, title: str, block: list[str], summary: list[str]) -> str:
    block = "\n".join(block).rstrip().splitlines()
    lines = [line for line in text.splitlines() if not line.startswith(f"| {title} |")]
    if "## Summary" in lines:
        end = lines.index("## Summary") + 2  # past the heading and its blank line
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        lines[end:end] = summary
    old, _ = _found("\n".join(lines), title)
    if old:
        start = lines.index(f"## {title}")
        lines[start : start + len(old)] = [*block, ""]
    else:
        lines += ["", *block]
    return "\n".join(lines).rstrip() + "\n"
