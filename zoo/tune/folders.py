"""What a study's folder holds (``OUTPUT/tune/STUDY``), named once.

``journal.log`` (the study, unless ``--storage`` names a database) and ``study.lock``;
``runs/`` (a run directory per trial), ``repeats/`` (the leading trials rerun with
other seeds), ``winner/`` (the chosen trial's final run: tested, with its model);
``recipe.toml``, ``leaderboard.json`` and ``leaderboard.png``.
"""

from __future__ import annotations

from pathlib import Path

JOURNAL, LOCK = "journal.log", "study.lock"
RUNS, REPEATS, FINAL = "runs", "repeats", "winner"


def is_study(folder: Path) -> bool:
    """Whether ``folder`` is a study's folder."""
    return (folder / RUNS).is_dir() and (folder / LOCK).is_file()


def study_runs(folder: Path) -> list[Path]:
    """The run directories of a study's trials, then its winner's final run."""
    found = []
    for part in (RUNS, FINAL):
        found += sorted(p for p in (folder / part).glob("*") if p.is_dir())
    return found
