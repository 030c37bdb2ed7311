"""Benchmark 9, ``zoo tune`` against extracting once: its code runs and judges its targets.

No timing threshold here: the micro run checks that the study runs and the report is
written, never how fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # bench/ is not installed; it lives next to tests/
    sys.path.insert(0, str(REPO_ROOT))

from bench import context, tune  # noqa: E402
from bench.measure import Measured  # noqa: E402
from bench.run import main  # noqa: E402


def _study(seconds: float, rss: list[float]) -> tune.Study:
    """Two backbones, ten trials: each backbone's first extracts 20 s, the others read."""
    runs, trials = {}, []
    for order, resident in enumerate(rss, start=1):
        backbone = ("resnet50", "mobilenet_v2")[order % 2]
        extracted = order <= 2
        timings = {"data": 0.2, "build": 0.5, "extract": 20.0 if extracted else 0.1, "train": 1}
        runs[f"run-{order}"] = tune.Run(f"run-{order}", backbone, timings, extracted)
        trials.append({"order": order, "number": order - 1, "backbone": backbone,
                       "error": None, "seconds": sum(timings.values()) + 0.3,
                       "run": f"run-{order}", "rss_mb": resident, "peak_mb": max(rss)})  # fmt: skip
    winner = tune.Run("winner", "resnet50", {"data": 0.2, "extract": 2.0, "train": 1.0}, True)
    return tune.Study(Measured(seconds, max(rss)), trials, runs, winner)


def test_the_study_is_judged_against_the_extraction_its_runs_did():
    study = _study(63.0, [1000.0] * 9 + [1050.0])

    section = tune.tuning_section(study, context.FULL)

    assert study.extraction == 42.0  # two backbones' 20 s, and the winner's test split
    ratio, memory = section.targets
    assert ratio.text == "the study at most 1.5x extracting the features once"
    assert (ratio.measured, ratio.met) == ("1.50x (63 s against 42 s)", True)
    assert memory.text == "memory after trial 1 within 10% of after trial 10"
    assert (memory.measured, memory.met) == ("+5.0% (1000 MB, then 1050 MB)", True)
    assert section.rows[0] == ["`mobilenet_v2`", "20.0 s", "1", "5", "2.10 s", "2.10 s"]


def test_memory_that_grows_trial_after_trial_misses_the_target():
    study = _study(120.0, [1000.0 + 20 * n for n in range(10)])

    section = tune.tuning_section(study, context.FULL)

    ratio, memory = section.targets
    assert (ratio.measured, ratio.met) == ("2.86x (120 s against 42 s)", False)
    assert (memory.measured, memory.met) == ("+18.0% (1000 MB, then 1180 MB)", False)


@pytest.mark.slow
def test_micro_benchmark_runs_a_study_and_writes_its_section(tmp_path: Path):
    output = tmp_path / "BENCHMARKS.md"
    argv = ["--only", "9", "--images", "40", "--image-size", "32", "--batch-size", "4"]

    code = main([*argv, "--output", str(output)])

    assert code == 0
    text = output.read_text()
    assert "## 9. Tuning" in text
    assert "| 9. Tuning | the study at most 1.5x extracting the features once |" in text
    assert "| `mobilenet_v2` |" in text and "| `mobilenet_v3_large` |" in text
    assert "| after trial | resident | peak so far |" in text
