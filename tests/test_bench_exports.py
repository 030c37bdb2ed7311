"""Benchmark 8's section: a table per model from each export's check, and its target.

The table builder is fed canned ``export.json`` checks; one tiny run of the benchmark
(a small CNN at 32x32, two exports) writes its section into a report. No timing
threshold: the tiny run checks that every export is measured and reported, never how fast.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # bench/ is not installed; it lives next to tests/
    sys.path.insert(0, str(REPO_ROOT))

from bench import exports, report  # noqa: E402
from bench import run as bench_run  # noqa: E402
from bench.__main__ import run  # noqa: E402
from bench.exports import BASELINE, INT8, Export, Model, Table, Variant  # noqa: E402

RESNET50 = Model("resnet50", "ResNet50, frozen, random weights", ("image_folder", "resnet50"))

SMALL_CNN = Model("small_cnn", "small CNN", ("image_folder", "small_cnn", "gap_sigmoid"))


def check(variant: Variant, latency_ms: float, **changes: Any) -> dict[str, Any]:
    """An ``export.json`` as ``zoo export`` writes it, for a 100x100 run."""
    return {
        "format": variant.fmt,
        "quantization": variant.quantize,
        "images": 200,
        "source": "the run's test split: 200 of 200 images",
        "agreement": 1.0,
        "max_difference": 1.5e-06,
        "accuracy_keras": 0.975,
        "accuracy_export": 0.975,
        "size_bytes": 93_873_532,
        "latency_ms": latency_ms,
        "passed": True,
        "reason": "probabilities within 0.0001 of Keras' (largest difference 1.5e-06)",
        "accepted": False,
        "accuracy_drop_points": 0.0,
        "calibration": None,
        "signature": {"image_size": 100, "quantization": variant.quantize},
        **changes,
    }


def resnet50(float32_ms: float, int8_ms: float) -> Table:
    return Table(
        RESNET50,
        [
            Export(BASELINE, check(BASELINE, float32_ms), seconds=54.6),
            Export(INT8, check(INT8, int8_ms, size_bytes=24_148_912, agreement=0.95,
                               max_difference=0.408, accuracy_export=0.965), seconds=70.0),
            Export(Variant("onnx"), None, error="ZooError: onnxruntime is not installed"),
        ],
    )  # fmt: skip


def test_a_row_per_export_with_its_speed_against_float32_litert():
    rows = exports.rows(resnet50(float32_ms=28.0, int8_ms=11.2))

    assert rows == [
        ["litert float32", "93.9", "28.0", "1.00x", "100.0%", "1.5e-06", "+0.0", "passed", "55 s"],
        ["litert int8", "24.1", "11.2", "2.50x", "95.0%", "0.41", "-1.0", "passed", "70 s"],
        ["onnx float32", "—", "—", "—", "—", "—", "—", "**export failed**", "—"],
    ]


def test_a_failed_check_shows_its_verdict_and_an_unlabelled_run_no_accuracy_change():
    failed = check(INT8, 9.0, passed=False, accepted=True, accuracy_export=0.5)
    unlabelled = check(INT8, 9.0, accuracy_keras=None, accuracy_export=None)
    table = Table(SMALL_CNN, [Export(INT8, failed), Export(INT8, unlabelled)])

    rows = exports.rows(table)

    assert [row[6:8] for row in rows] == [["-47.5", "**failed** (accepted)"], ["—", "passed"]]
    assert [row[3] for row in rows] == ["—", "—"]  # no float32 LiteRT to compare with


@pytest.mark.parametrize(
    ("float32_ms", "int8_ms", "measured", "met"),
    [
        (28.0, 11.2, "2.50x (11.2 ms against 28.0 ms)", True),
        (28.1, 26.9, "1.04x (26.9 ms against 28.1 ms)", False),
    ],
)
def test_the_target_is_int8_litert_twice_as_fast_as_float32_on_resnet50(
    float32_ms, int8_ms, measured, met
):
    small = Table(SMALL_CNN, [Export(BASELINE, check(BASELINE, 1.0)),
                              Export(INT8, check(INT8, 0.1))])  # fmt: skip

    section = exports.section([resnet50(float32_ms, int8_ms), small])

    (target,) = section.targets
    assert target.text == (
        "int8 LiteRT at least 2x faster per image than float32 LiteRT (ResNet50, 100x100, batch 1)"
    )
    assert (target.measured, target.met) == (measured, met)


def test_without_resnet50_the_section_has_no_target_but_says_why():
    small = Table(SMALL_CNN, [Export(BASELINE, check(BASELINE, 1.0))])

    section = exports.section([small])

    assert section.targets == []
    assert section.summary == "no ResNet50 LiteRT float32 and int8 pair measured"


def test_the_section_has_a_captioned_table_per_model_and_notes_each_failure():
    section = exports.section([resnet50(28.0, 11.2)])

    text = "\n".join(section.extra)
    assert text.startswith(
        "**ResNet50, frozen, random weights** (`zoo run image_folder resnet50`, 100x100; "
        "checked on the run's test split: 200 of 200 images; Keras' test accuracy 0.975):"
    )
    assert "| format, quantization | size (MB) | latency (ms/image) | speed vs float32" in text
    assert section.notes[0] == (
        "ResNet50, frozen, random weights, onnx float32: `zoo export` failed: "
        "ZooError: onnxruntime is not installed"
    )
    assert any("ImageNet weights cannot be downloaded" in note for note in section.notes)


def test_variants_cover_every_format_and_quantization_with_their_flags():
    labels = [variant.label for variant in exports.VARIANTS]

    assert labels == [
        "litert float32", "litert float16", "litert dynamic", "litert int8",
        "litert int8, uint8 in/out", "onnx float32", "openvino float32", "openvino float16",
        "openvino int8",
    ]  # fmt: skip
    assert Variant("litert", "int8", "uint8").flags() == [
        "--format", "litert", "--quantize", "int8", "--io", "uint8",
    ]  # fmt: skip
    assert BASELINE.flags() == ["--format", "litert"]


def rendered(title: str) -> str:
    """A report as ``python -m bench`` writes it, with one section named ``title``."""
    section = report.Section(title=title, what="Measured.", summary=f"{title} done")
    return report.render(
        [section],
        mode="quick",
        command="python -m bench --only 4",
        settings=[["mode", "quick"]],
        gpus=[],
        started=datetime.datetime(2026, 1, 2, 3, 4),
        duration=60.0,
        loads=("1.00", "1.00"),
    )


def test_merging_the_section_replaces_only_it_and_its_summary_row():
    before = rendered("4. Start-up")
    first = exports.section([resnet50(28.1, 26.9)])
    again = exports.section([resnet50(28.0, 11.2)])

    once = report.merge(before, first)
    twice = report.merge(once, again)

    rest = [line for line in twice.splitlines() if not line.startswith("| 8. Exports |")]
    assert "\n".join(rest).split("\n\n## 8. Exports")[0] == before.rstrip()  # as it was
    assert twice.count("## 8. Exports") == 1 and twice.count("| 8. Exports |") == 1
    assert "| 8. Exports | int8 LiteRT at least 2x faster" in twice and "| 2.50x (11.2" in twice
    summary = twice.split("## Summary")[1].split("## 4. Start-up")[0]
    assert summary.index("| 4. Start-up |") < summary.index("| 8. Exports |")
    assert twice == report.merge(twice, again)


def test_a_run_of_the_other_benchmarks_keeps_the_section_as_it_was():
    with_exports = report.merge(rendered("4. Start-up"), exports.section([resnet50(28.0, 11.2)]))
    rerun = rendered("4. Start-up").replace("Measured.", "Measured again.")

    kept = report.keep(with_exports, rerun, exports.TITLE)

    assert "Measured again." in kept
    assert kept == report.merge(rerun, exports.section([resnet50(28.0, 11.2)]))
    assert report.keep(rendered("4. Start-up"), rerun, exports.TITLE) == rerun


def test_python_m_bench_keeps_the_section_it_did_not_rerun(tmp_path, monkeypatch):
    output = tmp_path / "BENCHMARKS.md"
    output.write_text(report.merge(rendered("4. Start-up"), exports.section([resnet50(28, 11)])))
    again = report.Section(title="4. Start-up", what="Measured again.", summary="again")
    monkeypatch.setitem(bench_run.BENCHMARKS, 4, ("start-up", lambda ctx: again))

    assert run(["--only", "4", "--output", str(output)]) == 0

    text = output.read_text()
    assert "Measured again." in text and "| 4. Start-up | — | again | — |" in text
    assert "## 8. Exports" in text and "| 8. Exports | int8 LiteRT at least 2x" in text


@pytest.mark.slow
def test_a_tiny_exports_benchmark_merges_its_section_into_the_report(tmp_path, monkeypatch):
    output = tmp_path / "BENCHMARKS.md"
    output.write_text(rendered("4. Start-up"))
    every = exports.models
    monkeypatch.setattr(exports, "models", lambda ctx: every(ctx)[1:2])  # the small CNN
    monkeypatch.setattr(exports, "VARIANTS", (BASELINE, INT8))
    argv = ["--images", "40", "--epochs", "1", "--image-size", "32", "--output", str(output)]

    assert exports.main(argv) == 0

    text = output.read_text()
    assert "## 4. Start-up" in text and "## 8. Exports" in text
    assert "Written by `python -m bench exports --images 40 --epochs 1" in text
    assert "**small CNN** (`zoo run image_folder small_cnn gap_sigmoid`, 32x32; checked on" in text
    rows = [line for line in text.splitlines() if line.startswith("| litert ")]
    assert [row.split(" | ")[0] for row in rows] == ["| litert float32", "| litert int8"]
    assert all(row.split(" | ")[7] in ("passed", "**failed** (accepted)") for row in rows)
    assert "| 8. Exports | — | no ResNet50 LiteRT float32 and int8 pair measured | — |" in text
