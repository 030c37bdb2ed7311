"""The benchmark code runs and judges its targets; benchmarks themselves are not tests.

No timing threshold here: the micro run checks that both sides train and that the
report is written, never how fast.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # bench/ is not installed; it lives next to tests/
    sys.path.insert(0, str(REPO_ROOT))

from bench import cache_size, context, images, report, throughput, transfer  # noqa: E402
from bench.measure import BenchError, run_process, stat  # noqa: E402
from bench.run import main  # noqa: E402


def test_generated_folder_has_two_balanced_classes_of_jpegs_of_varied_sizes(tmp_path: Path):
    folder = images.generate(tmp_path / "data", 20, seed=3)

    assert sorted(p.name for p in folder.iterdir()) == ["test", "train", "validation"]
    sizes = set()
    for name in images.CLASSES:
        files = sorted(folder.glob(f"*/{name}/*.jpg"))
        assert len(files) == 10
        for split, count in (("train", 8), ("validation", 1), ("test", 1)):
            assert len(list(folder.glob(f"{split}/{name}/*.jpg"))) == count
        for path in files:
            with Image.open(path) as image:
                assert (image.format, image.mode) == ("JPEG", "RGB")
                sizes.add(image.size)
    assert len(sizes) > 1


def test_generation_is_seeded(tmp_path: Path):
    def contents(seed: int, name: str) -> list[bytes]:
        folder = images.generate(tmp_path / name, 4, seed=seed)
        return [p.read_bytes() for p in sorted(folder.rglob("*.jpg"))]

    assert contents(1, "a") == contents(1, "b")
    assert contents(1, "a") != contents(2, "c")


def test_run_process_measures_wall_time_and_peak_memory(tmp_path: Path):
    # Touch every page of 200 MiB so it is resident.
    code = "x = bytearray(200 * 2**20); x[::4096] = b'1' * len(x[::4096])"
    measured = run_process([sys.executable, "-c", code], log=tmp_path / "ok.log")

    assert measured.peak_mb >= 200
    assert measured.seconds > 0


def test_run_process_failure_shows_the_end_of_the_log(tmp_path: Path):
    with pytest.raises(BenchError, match="the disk is full"):
        run_process(
            [sys.executable, "-c", "raise SystemExit('the disk is full')"],
            log=tmp_path / "failed.log",
        )


def test_stat_gives_median_and_relative_spread():
    value = stat([3.0, 1.0, 2.0])

    assert (value.median, value.low, value.high) == (2.0, 1.0, 3.0)
    assert value.spread == pytest.approx(1.0)


def _side(seconds: list[float], peak: list[float], val: list[float]) -> transfer.Side:
    timings = [{"extract": s / 2, "train": 1.0} for s in seconds]
    return transfer.Side(seconds, peak, val, val, timings)


def test_end_to_end_section_judges_each_target_from_side_by_side_ratios():
    pair = transfer.Pair(2000, 7)
    pair.zoo = _side([50.0, 52.0], [1400.0, 1500.0], [0.995, 0.990])
    pair.plain = _side([330.0, 320.0], [1000.0, 1000.0], [0.970, 0.975])
    pair.variants["--runtime-precision bfloat16"] = _side([40.0, 41.0], [1400.0] * 2, [0.99] * 2)

    section = transfer.end_to_end_section(pair, image_size=100)

    met = {target.text: target.met for target in section.targets}
    assert met == {
        "zoo at least 6x faster": True,  # median of 6.6x and 6.15x
        "validation accuracy within one point": False,  # 1.75 points apart
        "peak memory at most 1.5x the plain script's": True,  # median of 1.4x and 1.5x
        "bfloat16 validation accuracy within one point of float32": True,  # 0.25 apart
    }
    assert not any(note.startswith("Why the speed") for note in section.notes)
    assert [row[0] for row in section.rows][1:] == [
        "zoo `--runtime-precision bfloat16`",
        "plain Keras",
    ]


def test_the_plain_scripts_pauses_are_counted_and_the_ratio_without_them_is_shown():
    # The first epoch traces (13 s); later ones take 10 s, or 20 s when TensorFlow pauses.
    assert transfer.paused([13.0, 20.0, 10.0, 10.5, 20.5, 10.0]) == 20.5
    assert transfer.paused([13.0, 10.0, 11.0, 10.0]) == 0.0
    pair = transfer.Pair(2000, 7)
    pair.zoo = _side([15.0, 15.0], [1200.0] * 2, [0.97] * 2)
    pair.plain = _side([101.0, 80.0], [1000.0] * 2, [0.97] * 2)
    pair.plain.epochs = [[13.0, 20.0, 10.0, 10.5, 20.5, 10.0], [13.0, 10.0, 11.0, 10.0]]

    section = transfer.end_to_end_section(pair, image_size=100)

    speed = next(t for t in section.targets if t.text == "zoo at least 6x faster")
    assert speed.met  # median of 6.73x and 5.33x
    assert speed.measured == "6.03x (5.35x against the plain script's time less its pauses)"
    assert "2 of 8 took at least 1.5x their run's fastest" in section.extra[0]
    assert "cost each run 20, 0 s" in section.extra[0]


def test_report_has_machine_versions_and_a_summary_row_per_target():
    pair = transfer.Pair(500, 1)
    pair.zoo = _side([30.0], [1200.0], [0.9])
    pair.plain = _side([33.0], [1000.0], [0.9])
    section = transfer.end_to_end_section(pair, image_size=100)

    text = report.render(
        [section],
        mode="quick",
        command="python -m bench --only 1",
        settings=[["mode", "quick"]],
        gpus=[],
        started=datetime.datetime(2026, 1, 2, 3, 4),
        duration=90.0,
        loads=("1.00", "2.00"),
    )

    assert "| GPU | none (TensorFlow sees no GPU) |" in text
    assert "| tensorflow |" in text and "| keras |" in text and "| openvino |" in text
    assert "| 1. Transfer learning end to end | zoo at least 6x faster | 1.10x | **no** |" in text
    assert "Why the speed target is missed" in text


class FakeWorkers:
    """Stands in for ``Context.worker``: canned rates, features written where asked."""

    def __init__(self, folder: Path, rates: dict[str, float], noise: dict[str, float]) -> None:
        self.folder, self.rates, self.noise = folder, rates, noise

    def __call__(self, kind, images, device, split, extra=()):
        if kind == "sizes":
            return {"100": {"map": [4, 4, 2048], "pooled": [2048]},
                    "224": {"map": [7, 7, 2048], "pooled": [2048]}}  # fmt: skip
        args = dict(zip(extra[::2], extra[1::2], strict=True))
        name = kind if kind != "extract" else args["--runtime"]
        if args.get("--precision") == "bfloat16":
            name += "-bf16"
        folder = self.folder / name
        folder.mkdir(exist_ok=True)
        features = np.linspace(1, 2, 64 * 8).reshape(64, 8) * (1 + self.noise.get(name, 0))
        np.save(folder / "features.npy", features)
        rate = self.rates[name]
        precision = "bfloat16" if name.endswith("bf16") else "float32"
        return {"images": 100, "seconds": 100 / rate, "first": [10, 10 / rate], "convert": 1.5,
                "runtime": {"precision": precision}, "folder": str(folder)}  # fmt: skip


def test_extraction_judges_openvino_against_tensorflow_on_the_same_images(tmp_path, monkeypatch):
    ctx = context.Context(context.QUICK, tmp_path)
    rates = {"tensorflow": 60.0, "openvino": 84.0, "openvino-bf16": 150.0, "predict": 62.0}
    fake = FakeWorkers(tmp_path, rates, {"openvino": 1e-6, "openvino-bf16": 4e-3})
    monkeypatch.setattr(ctx, "worker", fake)
    monkeypatch.setattr(throughput, "installed", lambda: "2026.4.1")

    section = throughput.extraction(ctx)

    met = {target.text: (target.measured, target.met) for target in section.targets}
    assert met["OpenVINO float32 extraction at least 1.3x TensorFlow's rate"] == ("1.40x", True)
    assert met["TensorFlow extraction at least 0.9 of predict's rate"] == ("0.97", True)
    text = "\n".join(section.extra)
    assert "| OpenVINO bfloat16 / TensorFlow | 2.50x |" in text
    assert "| OpenVINO float32 | 1.0e-06 |" in text
    assert "| OpenVINO bfloat16 (ran in bfloat16) | 4.0e-03 |" in text


def test_the_cache_size_table_compares_maps_with_pooled_vectors(tmp_path, monkeypatch):
    ctx = context.Context(context.QUICK, tmp_path)
    monkeypatch.setattr(ctx, "worker", FakeWorkers(tmp_path, {}, {}))

    section = cache_size.cache_size(ctx)

    assert section.rows[1] == [
        "224x224", "7x7x2048", "392.0 KiB", "8.7 GiB", "2048", "8.0 KiB", "181.8 MiB", "49x",
    ]  # fmt: skip
    assert section.summary == "100x100: 16x smaller pooled, 224x224: 49x smaller pooled"


@pytest.mark.slow
def test_micro_benchmark_trains_both_sides_and_writes_the_report(tmp_path: Path):
    output = tmp_path / "BENCHMARKS.md"
    argv = ["--only", "1", "--images", "40", "--epochs", "1", "--image-size", "32"]
    # Batches of 4 leave the plain script's test half of its 8 validation images a batch.
    code = main([*argv, "--batch-size", "4", "--output", str(output)])

    assert code == 0
    text = output.read_text()
    rows = [line.split("|")[1:-1] for line in text.splitlines()]
    sides = [cells for cells in rows if len(cells) == 7 and cells[0].startswith((" zoo", " plain"))]
    accuracies = [float(cells[5].split()[0]) for cells in sides]
    assert len(accuracies) >= 2 and all(0 <= a <= 1 for a in accuracies)
    assert "| side | wall time (median) |" in text
    assert "## 1. Transfer learning end to end" in text
