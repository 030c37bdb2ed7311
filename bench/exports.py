"""Benchmark 8: ``zoo export`` to every format and quantization, as its own check sees it.

Three runs are trained once each with ``zoo run``: a frozen ResNet50 and the tutorial's
small CNN on the generated image folder, at the run's image size, and the demo's
pretrained ``shapes_cnn`` (``demo_pretrained``), whose features are learned. Each is
exported with ``zoo export RUN --format F [--quantize Q] [--io uint8] --accept --json``,
a process per export, as users run it, and every figure comes from that export's
``export.json``: its runtime against Keras on the run's test split, its size, and its
latency at batch 1. ``--accept`` keeps an export whose check fails, so it is measured too.

``python -m bench exports [--full]`` runs this benchmark alone and merges its section
into BENCHMARKS.md (:func:`main`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.context import FULL, QUICK, REPO_ROOT, Context, Settings, temporary_workdir, zoo_command
from bench.measure import BenchError
from bench.report import Section, Target
from zoo.results.exports.check import FLOAT_TOLERANCE, MAX_DROP, TIMED, WARM_UP
from zoo.results.exports.writing import CALIBRATION_IMAGES

TITLE = "8. Exports"
#: The issue's target: int8 LiteRT this many times faster per image than float32 LiteRT.
TARGET_SPEEDUP = 2.0
#: The model the target is judged on.
TARGET_MODEL = "resnet50"
#: The quick mode's image size: a smaller int8 calibration, the same conversions.
QUICK_IMAGE_SIZE = 64


@dataclass(frozen=True)
class Variant:
    """One export: a format, its quantization (None: float32) and its input/output type."""

    fmt: str
    quantize: str | None = None
    io: str = "float32"

    @property
    def label(self) -> str:
        name = f"{self.fmt} {self.quantize or 'float32'}"
        return name if self.io == "float32" else f"{name}, {self.io} in/out"

    def flags(self) -> list[str]:
        flags = ["--format", self.fmt]
        if self.quantize:
            flags += ["--quantize", self.quantize]
        if self.io != "float32":
            flags += ["--io", self.io]
        return flags


BASELINE = Variant("litert")
INT8 = Variant("litert", "int8")
VARIANTS = (
    BASELINE,
    Variant("litert", "float16"),
    Variant("litert", "dynamic"),
    INT8,
    Variant("litert", "int8", "uint8"),
    Variant("onnx"),
    Variant("openvino"),
    Variant("openvino", "float16"),
    Variant("openvino", "int8"),
)


@dataclass(frozen=True)
class Model:
    """A run to export: ``key`` names it in code, ``title`` in the report.

    ``zoo run`` takes ``names`` (shown in the report), then ``sizes`` (the generated
    folder, epochs, image and batch size, given in the settings table).
    """

    key: str
    title: str
    names: tuple[str, ...]
    sizes: tuple[str, ...] = ()


@dataclass
class Export:
    """One export's check (``export.json``), or why ``zoo export`` failed."""

    variant: Variant
    check: dict[str, Any] | None
    seconds: float = 0.0
    error: str = ""


@dataclass
class Table:
    """A model's exports."""

    model: Model
    exports: list[Export]

    @property
    def checks(self) -> list[dict[str, Any]]:
        return [done.check for done in self.exports if done.check is not None]

    @property
    def image_size(self) -> int | None:
        """The size the run was trained at, as its exports' signatures say."""
        return self.checks[0]["signature"]["image_size"] if self.checks else None


def models(ctx: Context) -> list[Model]:
    """ResNet50 and the small CNN on the generated folder, and the demo's pretrained run."""
    s = ctx.settings
    sizes = (
        "--set",
        f"dataset.path={ctx.dataset(s.images)}",
        "--epochs",
        str(s.epochs),
        "--image-size",
        str(s.image_size),
        "--batch-size",
        str(s.batch_size),
        "--seed",
        str(s.seed),
    )
    frozen = ["--set", "backbone.weights=none", "--set", "backbone.trainable=false"]
    return [
        Model("resnet50", "ResNet50, frozen, random weights",
              ("image_folder", "resnet50", "gap_sigmoid", *frozen), sizes),
        Model("small_cnn", "small CNN", ("image_folder", "small_cnn", "gap_sigmoid"), sizes),
        Model("demo_pretrained", "shapes_cnn, pretrained (demo)", ("--recipe", "demo_pretrained")),
    ]  # fmt: skip


def train(ctx: Context, model: Model) -> Path:
    """``zoo run`` the model in its own process; its run directory."""
    argv = [*zoo_command(), "run", *model.names, *model.sizes, "--output", "runs"]
    _, folder = ctx.run(f"train-{model.key}", argv)
    (metrics,) = (folder / "runs").glob("*/metrics.json")
    return metrics.parent


def export(ctx: Context, run_dir: Path, variant: Variant) -> Export:
    """``zoo export`` ``run_dir`` as ``variant`` in its own process; its check."""
    argv = [*zoo_command(), "export", str(run_dir), *variant.flags(), "--output", "export"]
    name = "export-" + variant.label.replace(" ", "-").replace(",", "").replace("/", "")
    try:
        measured, folder = ctx.run(name, [*argv, "--accept", "--json"])
    except BenchError as exc:
        return Export(variant, None, error=_last_line(str(exc)))
    check = json.loads((folder / "export" / "export.json").read_text())
    return Export(variant, check, measured.seconds)


def _last_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else message


def measure(ctx: Context, chosen: list[Model], variants: tuple[Variant, ...]) -> list[Table]:
    """Train each model once, then export it as every variant."""
    tables = []
    for model in chosen:
        _status(f"training {model.title}")
        run_dir = train(ctx, model)
        done = []
        for variant in variants:
            _status(f"exporting {model.title} as {variant.label}")
            done.append(export(ctx, run_dir, variant))
        tables.append(Table(model, done))
    return tables


def exports(ctx: Context) -> Section:
    return section(measure(ctx, models(ctx), VARIANTS))


HEADER = ["format, quantization", "size (MB)", "latency (ms/image)", "speed vs float32 LiteRT",
          "top-1 agreement", "largest prob. difference", "accuracy change (points)", "check",
          "export took"]  # fmt: skip


def rows(table: Table) -> list[list[str]]:
    """A row per export; speeds are float32 LiteRT's latency over the export's."""
    baseline = _latency(table, BASELINE)
    return [_row(e, baseline) for e in table.exports]


def _row(done: Export, baseline: float | None) -> list[str]:
    if done.check is None:
        return [done.variant.label, *["—"] * 6, "**export failed**", "—"]
    c = done.check
    return [
        done.variant.label,
        _number(c["size_bytes"] / 1e6),
        _number(c["latency_ms"]),
        f"{baseline / c['latency_ms']:.2f}x" if baseline else "—",
        f"{c['agreement']:.1%}",
        f"{c['max_difference']:.2g}",
        _change(c),
        _verdict(c),
        f"{done.seconds:.0f} s",
    ]


def _number(value: float) -> str:
    """One decimal from 1 up, two significant digits below (a small CNN's 0.051 ms)."""
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def _change(check: dict[str, Any]) -> str:
    """The export's accuracy less Keras', in points (no labels: unknown)."""
    before, after = check.get("accuracy_keras"), check.get("accuracy_export")
    return "—" if before is None or after is None else f"{100 * (after - before):+.1f}"


def _verdict(check: dict[str, Any]) -> str:
    if check["passed"]:
        return "passed"
    return "**failed** (accepted)" if check.get("accepted") else "**failed**"


def _latency(table: Table, variant: Variant) -> float | None:
    for done in table.exports:
        if done.variant == variant and done.check is not None:
            return float(done.check["latency_ms"])
    return None


def target(tables: list[Table]) -> Target | None:
    """int8 LiteRT against float32 LiteRT on ResNet50, when both were measured."""
    table = next((t for t in tables if t.model.key == TARGET_MODEL), None)
    if table is None:
        return None
    baseline, int8 = _latency(table, BASELINE), _latency(table, INT8)
    if baseline is None or int8 is None:
        return None
    ratio = baseline / int8
    return Target(
        f"int8 LiteRT at least {TARGET_SPEEDUP:g}x faster per image than float32 LiteRT "
        f"(ResNet50, {_size(table)}, batch 1)",
        f"{ratio:.2f}x ({int8:.1f} ms against {baseline:.1f} ms)",
        ratio >= TARGET_SPEEDUP,
    )


def section(tables: list[Table]) -> Section:
    found = target(tables)
    result = Section(
        title=TITLE,
        what="`zoo export RUN --format F [--quantize Q] [--io uint8] --accept --json` of "
        "each run below, one process per export, as users run it; every figure is the "
        "export's own check (`export.json`): its runtime against Keras on the run's test "
        "split (top-1 agreement, largest probability difference, accuracy change), the "
        f"file's size (MB: 10^6 bytes), and its latency per image at batch 1 on the CPU "
        f"(the median of {TIMED} timed calls after {WARM_UP} warm-ups, in the export's "
        "process). Speed is float32 LiteRT's latency over the export's. A float export "
        f"passes its check when no probability differs from Keras' by more than "
        f"{FLOAT_TOLERANCE:g}, a quantized one when it loses at most {MAX_DROP:g} accuracy "
        "points; `--accept` keeps a failed one, measured.",
        targets=[found] if found else [],
        summary="" if found else "no ResNet50 LiteRT float32 and int8 pair measured",
    )
    for table in tables:
        result.extra += ["", _caption(table), "", *report.table(HEADER, rows(table))]
    result.extra = result.extra[1:]  # blank lines between the tables, not before them
    result.notes += [*_failures(tables), *NOTES]
    return result


def _size(table: Table) -> str:
    return f"{table.image_size}x{table.image_size}"


def _caption(table: Table) -> str:
    run = f"`zoo run {' '.join(table.model.names)}`"
    if not table.checks:
        return f"**{table.model.title}** ({run}):"
    first = table.checks[0]
    accuracy = first.get("accuracy_keras")
    seen = "" if accuracy is None else f"; Keras' test accuracy {accuracy:.3f}"
    return f"**{table.model.title}** ({run}, {_size(table)}; checked on {first['source']}{seen}):"


def _failures(tables: list[Table]) -> list[str]:
    return [
        f"{table.model.title}, {done.variant.label}: `zoo export` failed: {done.error}"
        for table in tables
        for done in table.exports
        if done.check is None
    ]


NOTES = [
    "ResNet50's ImageNet weights cannot be downloaded on this machine (no network), so it "
    "has random weights, frozen: the same layers, and so the same size and latency, as "
    "ImageNet's. Its head is trained on random features, so how its agreement and "
    "accuracy move under quantization need not match a pretrained ResNet50's; the demo's "
    "pretrained `shapes_cnn`, whose features are learned, gives those figures.",
    "Each latency is one process's median, the exports measured one after another rather "
    "than side by side, so the machine's load moves them; int8 exports are calibrated on "
    f"{CALIBRATION_IMAGES} of the run's training images.",
]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench exports",
        description="Benchmark 8 alone: export three runs to every format and quantization, "
        "and put its section into BENCHMARKS.md, leaving the rest of the file as it is.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_true",
        help=f"300 images, 2 epochs, {QUICK_IMAGE_SIZE}x{QUICK_IMAGE_SIZE} (default)",
    )
    mode.add_argument(
        "--full", action="store_true", help="2,000 images, 7 epochs, 100x100 (about 16 minutes)"
    )
    parser.add_argument("--images", type=int, help="images in the generated folder")
    parser.add_argument("--epochs", type=int, help="epochs of the folder's two runs")
    parser.add_argument("--image-size", type=int, help="images are resized to SIZE x SIZE")
    parser.add_argument(
        "--output",
        default=str(REPO_ROOT / "BENCHMARKS.md"),
        help="the report to put the section into (written whole when new)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, runs)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    settings = FULL if args.full else dataclasses.replace(QUICK, image_size=QUICK_IMAGE_SIZE)
    overrides = {
        name: getattr(args, name)
        for name in ("images", "epochs", "image_size")
        if getattr(args, name) is not None
    }
    return dataclasses.replace(settings, **overrides)


def main(argv: list[str]) -> int:
    """Run benchmark 8 and merge its section into the report (written whole when new)."""
    args = parse(argv)
    settings = settings_from(args)
    try:
        settings.check([1])  # benchmark 1's folder, as this one generates: big enough to split
    except BenchError as exc:
        _status(f"error: {exc}")
        return 2
    ctx = Context(settings, temporary_workdir())
    started, clock, load = _dt.datetime.now(_dt.UTC), time.perf_counter(), report.load_average()
    try:
        measured = exports(ctx)
    except BenchError as exc:
        _status(f"benchmark failed: {exc}\nwork folder kept: {ctx.workdir}")
        return 1
    if not args.keep:
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    command = " ".join(["python -m bench exports", *argv])
    seconds = time.perf_counter() - clock
    output = Path(args.output)
    if output.exists():
        written = _provenance(command, settings, started, seconds, load)
        measured.what = written + "\n\n" + measured.what
        text = report.merge(output.read_text(encoding="utf-8"), measured)
    else:
        text = report.render(
            [measured], mode=settings.mode, command=command, settings=_settings_rows(settings),
            gpus=None, started=started, duration=seconds, loads=(load, report.load_average()),
        )  # fmt: skip
    output.write_text(text, encoding="utf-8")
    _status(f"wrote {TITLE} into {output} in {seconds / 60:.1f} minutes")
    return 0


def _settings_rows(s: Settings) -> list[list[str]]:
    return [
        ["mode", s.mode],
        ["benchmarks", "8"],
        ["images", f"{s.images} generated JPEGs, 80/10/10"],
        ["epochs, image size, batch size", f"{s.epochs}, {s.image_size}, {s.batch_size}"],
    ]


def _provenance(command: str, s: Settings, started: _dt.datetime, seconds: float, load: str) -> str:
    return (
        f"Written by `{command}` on {started:%Y-%m-%d at %H:%M} UTC in {seconds / 60:.1f} "
        f"minutes, apart from the other benchmarks ({s.mode} mode: the image_folder runs "
        f"on {s.images} generated JPEGs split 80/10/10, {s.epochs} epochs, batch size "
        f"{s.batch_size}; the demo's run as its recipe sets it). Regenerate this section "
        "alone with the same command: it replaces this section and its summary row and "
        "leaves the rest of the file as it is (`python -m bench` keeps it as it was). Load "
        f"average (1, 5, 15 min) at start {load}; at end {report.load_average()}."
    )


def _status(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
