"""``python -m bench [--quick | --full]``: run the benchmarks, write BENCHMARKS.md."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import shutil
import sys
import time
from collections.abc import Callable

from bench import cache_size, report, startup, throughput, transfer, tune
from bench.context import FULL, QUICK, REPO_ROOT, Context, Settings, temporary_workdir
from bench.measure import BenchError
from bench.report import Section

BENCHMARKS: dict[int, tuple[str, Callable[[Context], Section]]] = {
    1: ("transfer learning end to end", transfer.end_to_end),
    2: ("feature extraction", throughput.extraction),
    3: ("input pipeline", throughput.pipeline),
    4: ("start-up", startup.startup),
    5: ("scaling", transfer.scaling),
    7: ("feature cache size", cache_size.cache_size),
    9: ("tuning", tune.tuning),
}
#: Every benchmark ``python -m bench`` runs (8, ``python -m bench exports``, runs alone).
NUMBERS = sorted({*BENCHMARKS, 6})


def gpu_variant(ctx: Context) -> list[Section]:
    """Benchmark 6: 1-3 again with the GPU visible, or a note that it was skipped."""
    ctx.gpus = ctx.worker("probe", 0, "gpu", "validation")["gpus"]
    if not ctx.gpus:
        return [
            Section(
                title="6. GPU variant",
                what="Benchmarks 1–3 with the GPU visible, recording the device.",
                summary="skipped: no GPU",
                notes=[
                    "Skipped: TensorFlow sees no GPU on this machine "
                    "(`tf.config.list_physical_devices('GPU')` is empty)."
                ],
            )
        ]
    sections = [
        transfer.end_to_end(ctx, "gpu"),
        throughput.extraction(ctx, "gpu"),
        throughput.pipeline(ctx, "gpu"),
    ]
    for section in sections:
        section.title = f"6. GPU ({', '.join(ctx.gpus)}): {section.title}"
    return sections


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure zoo against a plain Keras run, side by side; write BENCHMARKS.md.",
        epilog="python -m bench exports [--full] measures every export format and "
        "quantization (benchmark 8) alone and merges its section into BENCHMARKS.md.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, 1 repeat (default)")
    mode.add_argument(
        "--full",
        action="store_true",
        help="the issue's sizes, 5 runs a side (about 30 minutes on 2 otherwise idle cores)",
    )
    parser.add_argument("--only", type=_numbers, default=NUMBERS, help="benchmarks, e.g. 1,4")
    parser.add_argument("--images", type=int, help="images in benchmark 1's folder")
    parser.add_argument("--epochs", type=int, help="epochs of benchmark 1")
    parser.add_argument("--repeats", type=int, help="runs of each side of benchmark 1")
    parser.add_argument("--image-size", type=int, help="images are resized to SIZE x SIZE")
    parser.add_argument("--batch-size", type=int, help="images per step, both sides")
    parser.add_argument(
        "--output", default=str(REPO_ROOT / "BENCHMARKS.md"), help="the report to write"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, runs)")
    return parser.parse_args(argv)


def _numbers(text: str) -> list[int]:
    try:
        numbers = sorted({int(n) for n in text.split(",")})
    except ValueError:
        numbers = []
    if not numbers or not set(numbers) <= set(NUMBERS):
        raise argparse.ArgumentTypeError(
            f"expected numbers of {', '.join(map(str, NUMBERS))}, e.g. 1,4; got {text!r}"
        )
    return numbers


def settings_from(args: argparse.Namespace) -> Settings:
    settings = FULL if args.full else QUICK
    overrides = {
        name: getattr(args, name)
        for name in ("images", "epochs", "repeats", "image_size", "batch_size")
        if getattr(args, name) is not None
    }
    if "image_size" in overrides:  # every benchmark's, benchmark 9's too
        overrides["tune_image_size"] = overrides["image_size"]
    return dataclasses.replace(settings, **overrides)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    settings = settings_from(args)
    selected = args.only
    try:
        settings.check(selected)
    except BenchError as exc:
        _status(f"error: {exc}")
        return 2
    ctx = Context(settings, temporary_workdir())
    started, clock = _dt.datetime.now(_dt.UTC), time.perf_counter()
    load_start = report.load_average()
    sections: list[Section] = []
    try:
        for number in selected:
            title = BENCHMARKS[number][0] if number in BENCHMARKS else "GPU variant"
            _status(f"[{number}] {title} ({time.perf_counter() - clock:.0f} s so far)")
            if number == 6:
                sections += gpu_variant(ctx)
            else:
                sections.append(BENCHMARKS[number][1](ctx))
    except BenchError as exc:
        _status(f"benchmark failed: {exc}\nwork folder kept: {ctx.workdir}")
        return 1
    if not args.keep:
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    text = report.render(
        sections,
        mode=settings.mode,
        command=" ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        settings=_settings_rows(settings, selected),
        gpus=ctx.gpus,
        started=started,
        duration=time.perf_counter() - clock,
        loads=(load_start, report.load_average()),
    )
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    _status(f"wrote {args.output} in {(time.perf_counter() - clock) / 60:.1f} minutes")
    return 0


def _settings_rows(s: Settings, selected: list[int]) -> list[list[str]]:
    why = [
        ["why these repeats", "the plain script's runs differ by up to 50% (tf.data "
         "idles about 10 s at the end of some of its passes), and zoo's by a few percent "
         f"from hour to hour, so benchmark 1 takes {s.repeats} runs a side (`--full`: 5, "
         "about 30 minutes on 2 cores), whose median is a run"],
    ] if s.mode == "full" else []  # fmt: skip
    return [
        *why,
        ["mode", s.mode],
        ["benchmarks", ", ".join(map(str, selected))],
        ["images (benchmarks 1–3)", f"{s.images} generated JPEGs, 80/10/10"],
        ["epochs, image size, batch size", f"{s.epochs}, {s.image_size}, {s.batch_size}"],
        ["repeats", f"benchmark 1: {s.repeats} a side; benchmarks 2–3: {s.small_repeats} "
         f"a side; benchmark 4: {max(startup.MIN_REPEATS, s.small_repeats)} a side; "
         "benchmark 5: 1 a point"],
        ["scaling points", f"images {', '.join(map(str, s.scale_images))} at "
         f"{s.scale_images_epochs} epoch(s); epochs {', '.join(map(str, s.scale_epochs))} on "
         f"{s.scale_epochs_images} images"],
        ["tuning study (benchmark 9)", f"{s.tune_trials} trials of up to {s.tune_epochs} "
         f"epochs on {', '.join(s.tune_backbones)} at {s.tune_size}x{s.tune_size}, "
         "on benchmark 1's folder"],
    ]  # fmt: skip


def _status(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
