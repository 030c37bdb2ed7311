"""Benchmark 9: ``zoo tune`` on frozen backbones, against extracting their features once.

One study, as users run it: ``zoo tune image_folder --backbones A,B,.. --heads
gap_sigmoid --trials N --search learning_rate,dropout,label_smoothing,weight_decay,
class_weight`` on the generated image folder, random weights (``backbone.weights=none``:
the same compute as ImageNet's), in a fresh process with a cold zoo cache. Each
backbone's first trial extracts its features; its other trials read them from the
cache, and only the winner's final run writes a model (and extracts the test split).

The process is ``python -m bench.tune RESULT -- ZOO_TUNE_ARGS``: zoo's command line in
process, its console's ``trial_ended`` also noting when each trial ended and the
process's resident memory then (``VmRSS``) and its peak so far (``VmHWM``).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.context import Context, Settings
from bench.measure import BenchError, Measured
from bench.report import Section, Target, table

TITLE = "9. Tuning"
SEARCHED = ("learning_rate", "dropout", "label_smoothing", "weight_decay", "class_weight")
HEAD = "gap_sigmoid"
#: The issue's targets: the study against extracting once, and memory after the last
#: trial against after a tenth of them.
MAX_RATIO, MAX_GROWTH = 1.5, 0.10


@dataclass(frozen=True)
class Run:
    """One run directory of the study: its backbone, phases, and whether it extracted."""

    name: str
    backbone: str
    timings: dict[str, float]
    extracted: bool


@dataclass(frozen=True)
class Study:
    """What one ``zoo tune`` process measured."""

    measured: Measured
    trials: list[dict[str, Any]]  # in the order they ended (see :func:`child`)
    runs: dict[str, Run]  # the trials', by run directory name
    winner: Run

    def cached(self, trial: dict[str, Any]) -> bool:
        """Whether ``trial`` read every split's features from the cache."""
        return not self.runs[trial["run"]].extracted

    def first_extractions(self) -> list[Run]:
        """Each backbone's first run that extracted features (runs are named by time)."""
        first: dict[str, Run] = {}
        for run in sorted(self.runs.values(), key=lambda r: r.name):
            if run.extracted:
                first.setdefault(run.backbone, run)
        return list(first.values())

    @property
    def extraction(self) -> float:
        """Seconds extracting each backbone's features once: the extract phase of its
        first run that extracted, and of the winner's run (the test split) if it did."""
        runs = [*self.first_extractions(), self.winner]
        return sum(r.timings.get("extract", 0.0) for r in runs if r.extracted)

    @property
    def extracted_again(self) -> float:
        """Seconds the trials spent extracting features a backbone had extracted already."""
        again = [r for r in self.runs.values() if r.extracted]
        return sum(r.timings.get("extract", 0.0) for r in again) - sum(
            r.timings.get("extract", 0.0) for r in self.first_extractions()
        )

    @property
    def ratio(self) -> float:
        return self.measured.seconds / self.extraction

    def memory(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The samples after a tenth of the trials (trial 10 of 100) and after the last."""
        early = max(1, math.ceil(len(self.trials) / 10))
        return self.trials[early - 1], self.trials[-1]


def study_argv(ctx: Context) -> list[str]:
    """``zoo tune``'s arguments for the benchmark's study."""
    s = ctx.settings
    argv = ["image_folder", "--backbones", ",".join(s.tune_backbones), "--heads", HEAD]
    argv += ["--trials", str(s.tune_trials * len(s.tune_backbones))]
    argv += ["--search", ",".join(SEARCHED)]
    argv += ["--set", f"dataset.path={ctx.dataset(s.images)}", "--set", "backbone.weights=none"]
    argv += ["--epochs", str(s.tune_epochs), "--image-size", str(s.tune_size)]
    return [*argv, "--batch-size", str(s.batch_size), "--seed", str(s.seed), "--output", "runs"]


def run_study(ctx: Context) -> Study:
    """The study in its own process; what it measured and the runs it left."""
    child_argv = [sys.executable, "-m", "bench.tune", "result.json", "--", *study_argv(ctx)]
    measured, folder = ctx.run("zoo-tune", child_argv)
    trials = json.loads((folder / "result.json").read_text())["trials"]
    failed = [t for t in trials if t["error"] is not None]
    if failed:
        raise BenchError(f"{len(failed)} trials failed, the first: {failed[0]['error']}; "
                         f"the log: {folder / 'output.log'}")  # fmt: skip
    study = folder / "runs" / "tune" / "image_folder"
    runs = [_run(path.parent) for path in sorted((study / "runs").glob("*/metrics.json"))]
    (winner,) = [_run(path.parent) for path in (study / "winner").glob("*/metrics.json")]
    return Study(measured, trials, {run.name: run for run in runs}, winner)


def _run(folder: Path) -> Run:
    metrics = json.loads((folder / "metrics.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    sources = [entry.get("source") for entry in (metrics.get("feature_cache") or {}).values()]
    return Run(folder.name, config["backbone"]["name"], metrics["timings"], "extracted" in sources)


def tuning(ctx: Context) -> Section:
    """Benchmark 9."""
    return tuning_section(run_study(ctx), ctx.settings)


def tuning_section(study: Study, s: Settings) -> Section:
    early, last = study.memory()
    growth = last["rss_mb"] / early["rss_mb"] - 1
    backbones = s.tune_backbones
    return Section(
        title=TITLE,
        what=f"`zoo tune image_folder --backbones {','.join(backbones)} --heads {HEAD} "
        f"--trials {len(study.trials)} --search {','.join(SEARCHED)} --set "
        f"backbone.weights=none --epochs {s.tune_epochs} --image-size {s.tune_size}` on "
        f"{s.images} generated JPEGs (80/10/10), one process with a cold zoo cache: "
        f"{s.tune_trials} trials a backbone on average (each backbone's first trial comes "
        "first, then the sampler chooses: it favours the backbone that learns), each a run "
        f"of up to {s.tune_epochs} epochs (pruned when weak), then the winner's run, which "
        "scores the test split and "
        "writes its model. Extracting the features once is the extract phase of each "
        "backbone's first trial that extracted them, and of the winner's run (the test "
        "split, which trials do not read); "
        "the study is the process's wall time, start to exit. Memory is the process's "
        "resident set after each trial (`VmRSS`), and its peak (`VmHWM`).",
        header=["backbone", "extraction (first)", "trials that extracted", "trials",
                "trial time (median)", "trial time (cached features)"],
        rows=_backbone_rows(study),
        targets=[
            Target(f"the study at most {MAX_RATIO}x extracting the features once",
                   f"{study.ratio:.2f}x ({study.measured.seconds:.0f} s against "
                   f"{study.extraction:.0f} s)", study.ratio <= MAX_RATIO),
            Target(f"memory after trial {early['order']} within {MAX_GROWTH:.0%} of after "
                   f"trial {last['order']}", f"{growth:+.1%} ({early['rss_mb']:.0f} MB, then "
                   f"{last['rss_mb']:.0f} MB)", abs(growth) <= MAX_GROWTH),
        ],
        extra=[*_memory(study), "", *_profile(study)],
    )  # fmt: skip


def _backbone_rows(study: Study) -> list[list[str]]:
    rows = []
    for name in dict.fromkeys(t["backbone"] for t in study.trials):
        extracting = [r for r in study.runs.values() if r.backbone == name and r.extracted]
        first = extracting[0].timings.get("extract", 0.0) if extracting else 0.0
        trials = [t for t in study.trials if t["backbone"] == name]
        cached = [t["seconds"] for t in trials if study.cached(t)]
        rows.append([
            f"`{name}`", f"{first:.1f} s", str(len(extracting)), str(len(trials)),
            f"{statistics.median(t['seconds'] for t in trials):.2f} s",
            f"{statistics.median(cached):.2f} s" if cached else "—",
        ])  # fmt: skip
    return rows


def _memory(study: Study) -> list[str]:
    shown = [t for t in study.trials if t in study.memory() or t["order"] % 10 == 0]
    rows = [[str(t["order"]), f"{t['rss_mb']:.0f} MB", f"{t['peak_mb']:.0f} MB"] for t in shown]
    return [
        f"Memory after every tenth trial; the process's peak, the winner's run included: "
        f"{study.measured.peak_mb:.0f} MB.",
        "",
        *table(["after trial", "resident", "peak so far"], rows),
    ]


def _profile(study: Study) -> list[str]:
    """Where the study's time goes; the rows add up to its wall time."""
    runs, winner = list(study.runs.values()), study.winner
    cached = [r for r in runs if not r.extracted]
    in_trials = sum(t["seconds"] for t in study.trials)
    winner_seconds = sum(winner.timings.values())
    parts = {
        "extracting features (each backbone's first trial, the winner's test split)":
            study.extraction,
        "trials: extracting a backbone's features again": study.extracted_again,
        "trials: reading the splits (`data`)": _sum(runs, "data"),
        "trials: building the model (`build`)": _sum(runs, "build"),
        "trials: reading cached features (`extract`, cached)": _sum(cached, "extract"),
        "trials: training the head (`train`)": _sum(runs, "train"),
        "trials: outside their run's phases (run folder, latency, clearing Keras)":
            in_trials - sum(sum(r.timings.values()) for r in runs),
        "the winner's run, less its extraction": winner_seconds
            - (winner.timings.get("extract", 0.0) if winner.extracted else 0.0),
        "start-up, imports, Optuna between trials, the leaderboard, exit":
            study.measured.seconds - in_trials - winner_seconds,
    }  # fmt: skip
    total = study.measured.seconds
    rows = [[name, f"{t:.1f} s", f"{t / total:.0%}"] for name, t in parts.items()]
    trial = [t["seconds"] for t in study.trials if study.cached(t)]
    median = f"{statistics.median(trial):.2f} s" if trial else "—"
    return [
        f"Where the study's {total:.0f} s go (a trial on cached features: {median}, median):",
        "",
        *table(["part", "seconds", "share"], rows),
    ]


def _sum(runs: Sequence[Run], phase: str) -> float:
    return sum(r.timings.get(phase, 0.0) for r in runs)


def child(argv: list[str]) -> int:
    """``python -m bench.tune RESULT -- ZOO_TUNE_ARGS``: ``zoo tune`` as its script runs
    it, each ended trial noted in RESULT."""
    from zoo import cli
    from zoo.runtime import patches
    from zoo.tune import reporting

    result, zoo_argv = Path(argv[0]), argv[argv.index("--") + 1 :]
    trials: list[dict[str, Any]] = []

    class Noted(reporting.ConsoleShown):
        def trial_ended(self, number, total, draw, outcome, error):
            super().trial_ended(number, total, draw, outcome, error)
            trials.append({
                "order": len(trials) + 1, "number": number, "backbone": draw.backbone,
                "error": error, "seconds": outcome.seconds if outcome else None,
                "run": outcome.run_dir.name if outcome and outcome.run_dir else None,
                **_resident(),
            })  # fmt: skip

    reporting.ConsoleShown = Noted  # the command looks it up when it runs
    with patches.command_process():
        code = cli.main(["tune", *zoo_argv])
    result.write_text(json.dumps({"code": code, "trials": trials}))
    return code


def _resident() -> dict[str, float]:
    """This process's resident memory now and its peak so far, in MB (MiB, as
    ``ru_maxrss`` is reported), from /proc/self/status."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found["rss_mb" if name == "VmRSS" else "peak_mb"] = int(value.split()[0]) / 1024
    return found


if __name__ == "__main__":
    sys.exit(child(sys.argv[1:]))
