"""Running one measured process: wall time, peak memory, and a log to look at on failure."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class BenchError(Exception):
    """A benchmarked process failed; the message has the end of its log."""


@dataclass(frozen=True)
class Measured:
    """One process: wall seconds from start to exit, and its peak resident memory."""

    seconds: float
    peak_mb: float


def run_process(
    argv: Sequence[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Measured:
    """Run ``argv`` to the end, its output to ``log``; measure wall time and peak RSS.

    ``os.wait4`` returns the resource usage of exactly this child (``ru_maxrss``, in KiB
    on Linux, the largest resident set it had), as ``/usr/bin/time -v`` reports it.

    Raises:
        BenchError: the process exited with a non-zero status.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise BenchError(
            f"{' '.join(map(str, argv))} exited with {process.returncode}; "
            f"the end of {log}:\n{tail}"
        )
    return Measured(seconds, usage.ru_maxrss / 1024)


@dataclass(frozen=True)
class Stat:
    """Repeated measurements of one figure: the median and the spread (min to max)."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    @property
    def spread(self) -> float:
        """Max minus min, relative to the median (0.05 is 5%)."""
        return (self.high - self.low) / self.median if self.median else 0.0


def stat(values: Sequence[float]) -> Stat:
    if not values:
        raise ValueError("a statistic needs at least one value")
    return Stat(tuple(float(v) for v in values))
