"""``zoo tune DATASET``: search backbones, heads and settings; ``--report STUDY`` shows one."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from zoo import console
from zoo.commands._common import add_settings, cache_max_size, registry_from
from zoo.config.settings import SETTINGS
from zoo.errors import ZooError

POSITION = 32
FOLDER = "tune"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_STUDY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    from zoo.tune.space import SEARCHABLE

    parser = sub.add_parser(
        "tune",
        parents=[common],
        help="search backbones, heads and settings for DATASET (Optuna)",
        description="Search which backbone, head and training settings suit DATASET: "
        "each trial is a zoo run (no test score, no model), pruned when weak; frozen "
        "backbones' trials share cached features. The study is stored under "
        "OUTPUT/tune/STUDY and continues when run again; several processes may tune it "
        "at once. At the end the leading trials are repeated with other seeds "
        "(--repeats), the winner is run once more with its test split scored and its "
        "model written, and its recipe, the leaderboard and its figure are written. "
        "Searched settings: "
        + "; ".join(f"{k} ({v})" for k, v in SEARCHABLE.items())
        + ". A setting given as a flag is fixed, not searched. Needs zoo[tune].",
        epilog="examples: zoo tune shapes --trials 6; zoo tune --report shapes; "
        "zoo tune image_folder --set dataset.path=PHOTOS --timeout 30m --repeats 2",
    )
    add_ = parser.add_argument
    add_("dataset", nargs="?", metavar="DATASET", help="the dataset to tune for")
    search = parser.add_argument_group("the search")
    search.add_argument(
        "--backbones",
        default="all",
        metavar="A,B|all",
        help="backbones to search (default: all that are here offline)",
    )
    search.add_argument(
        "--heads",
        default="all",
        metavar="A,B|all",
        help="heads to search (default: all that fit the data)",
    )
    search.add_argument(
        "--trials",
        type=int,
        default=20,
        metavar="N",
        help="the study's total of trials, over every process (default: 20)",
    )
    search.add_argument(
        "--timeout", metavar="DURATION", help="start no trial after this long, e.g. 90s, 30m, 2h"
    )
    search.add_argument(
        "--metric",
        choices=("val_accuracy", "val_loss"),
        default="val_accuracy",
        help="what trials are ranked by (default: val_accuracy)",
    )
    search.add_argument(
        "--search",
        metavar="A,B",
        help="the settings to search (default: all of them, less those fixed by a flag)",
    )
    search.add_argument(
        "--fine-tune-depths",
        metavar="N,N",
        help="also search fine-tuning: none or the top N backbone layers "
        "(for --fine-tune-epochs, default 3)",
    )
    search.add_argument(
        "--repeats",
        type=int,
        default=0,
        metavar="K",
        help="rerun the leading trials with K other seeds and rank them by the mean (default: 0)",
    )
    search.add_argument(
        "--study",
        metavar="NAME",
        help="the study's name (default: the dataset's); the same name continues it",
    )
    search.add_argument(
        "--storage",
        metavar="URL",
        help="a database Optuna supports, shared by machines "
        "(default: a journal file in the study's folder)",
    )
    search.add_argument(
        "--report",
        metavar="STUDY",
        help="show a study's leaderboard and write its figure; trains nothing",
    )
    add_settings(
        parser.add_argument_group("fixed for every trial (as zoo run takes them)"),
        "a component parameter for every trial (repeatable)",
    )
    how = parser.add_argument_group("how to run")
    how.add_argument(
        "--output",
        type=Path,
        default=Path("runs"),
        metavar="DIR",
        help="studies go to DIR/tune/STUDY (default: ./runs)",
    )
    how.add_argument(
        "--feature-cache-dir",
        type=Path,
        metavar="DIR",
        help="where cached features persist (default: ~/.cache/zoo/features)",
    )
    how.add_argument(
        "--json", action="store_true", help="print the leaderboard and the winner as JSON"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.report:
        return _report(args)
    if not args.dataset:
        raise ZooError(
            "zoo tune needs a dataset, or --report STUDY.",
            expected="zoo tune DATASET [--backbones A,B] [--trials N]",
            fix="for example: zoo tune shapes --backbones shapes_cnn,small_cnn",
            got=" ".join(sys.argv[1:]),
        )
    from zoo.console import tuning
    from zoo.train.engine import EngineOptions
    from zoo.tune import plan, search, space, studies
    from zoo.tune.reporting import ConsoleShown

    studies.import_optuna()  # the install hint before anything else
    name = _study_name(args.study or args.dataset)  # what needs no plugin, checked first
    trials = _positive(args.trials, "--trials")
    timeout = parse_duration(args.timeout) if args.timeout else None
    registry = registry_from(args)
    settings = {s.name: getattr(args, s.name) for s in SETTINGS}
    given = [setting for setting, value in settings.items() if value is not None]
    if args.fine_tune_depths and settings["fine_tune_epochs"] is None:
        settings["fine_tune_epochs"] = 3
    depths = tuple(d.strip() for d in (args.fine_tune_depths or "").split(",") if d.strip())
    checked = {**settings, "fine_tune_layers": depths[0]} if depths else settings
    found = plan.candidates(registry, args.dataset, args.backbones, args.heads, checked, args.sets)
    tuning.left_out([vars(s) for s in found.skipped], found.offline)
    fixed_params = [s.partition("=")[0].strip() for s in args.sets]
    searched = space.searched_settings(
        args.search, [*given, *("dropout" for p in fixed_params if p == "head.dropout")]
    )
    job = search.Tuning(
        registry=registry,
        dataset=args.dataset,
        space=space.Space(found.backbones, found.heads, searched, depths, found.with_dropout),
        settings=settings,
        sets=tuple(args.sets),
        folder=args.output / FOLDER / name,
        name=name,
        storage=args.storage,
        trials=trials,
        timeout=timeout,
        metric=args.metric,
        repeats=max(0, args.repeats),
        options=EngineOptions(
            cache_dir=args.feature_cache_dir,
            cache_max=cache_max_size(registry, None, "--feature-cache-max"),
        ),
        command=("zoo", *sys.argv[1:]),
    )
    summary = search.tune(job, ConsoleShown(args.metric))
    if not summary["ended"]:
        tuning.still_running(summary)
        return 0
    _show(summary, args.json, args.metric)
    if not job.repeats:
        console.status(
            "the leader was not rerun with other seeds: --repeats 2 checks it was not luck"
        )
    return 0


def _show(summary: dict[str, Any], as_json: bool, metric: str) -> None:
    from zoo.console import tuning

    rows = [r.to_json() for r in summary["rows"]]
    if as_json:
        console.print_json({**{k: v for k, v in summary.items() if k != "rows"}, "rows": rows})
        return
    tuning.leaderboard(rows, metric, limit=20)
    tuning.ended(summary)


def _report(args: argparse.Namespace) -> int:
    from zoo.tune import leaderboard, studies

    optuna = studies.import_optuna()
    name = _study_name(args.report, "--report")
    folder = args.output / FOLDER / name
    if args.storage is None and not (folder / studies.JOURNAL).is_file():
        raise ZooError(
            f"there is no study '{name}' in {folder}.",
            expected=f"a study zoo tune stored there ({folder / studies.JOURNAL})",
            fix="give the --output the study was run with, or its --storage URL",
            got=str(folder),
        )
    try:
        with studies.readable(folder, args.storage):
            study = optuna.load_study(
                study_name=name, storage=studies.storage(folder, args.storage)
            )
    except KeyError:
        raise ZooError(
            f"the storage holds no study named '{name}'.",
            expected="the name zoo tune was given with --study (default: the dataset's)",
            fix="check the name, or the --storage URL",
            got=name,
        ) from None
    setup = study.user_attrs.get("setup")
    metric = setup.get("metric") if isinstance(setup, dict) else None
    metric = metric if metric in leaderboard.METRICS else "val_accuracy"
    board = leaderboard.rows(study, metric)
    ended = study.user_attrs.get("ended")
    ended = ended if isinstance(ended, dict) and "chosen" in ended else {}
    figure = leaderboard.write(folder, board, {"study": name, **ended}, metric)
    summary = {**ended, "ended": bool(ended), "rows": board, "figure": str(figure), "study": name}
    if args.json:
        _show(summary, True, metric)
        return 0
    from zoo.console import tuning

    tuning.leaderboard([r.to_json() for r in board], metric)
    if ended:
        tuning.ended(summary)
    console.status(f"figure: {figure}")
    return 0


def _study_name(text: str, flag: str = "--study") -> str:
    if not _STUDY.match(text):
        raise ZooError(
            "a study's name is a folder name: letters, digits, '_', '.' and '-'.",
            expected="a name such as shapes or photos-2026",
            fix=f"pass {flag} NAME",
            got=text,
        )
    return text


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise ZooError(
            f"{flag} must be 1 or more.", expected="a positive count", fix=f"{flag} 20", got=value
        )
    return value


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``1.5h`` or plain seconds, in seconds."""
    found = _DURATION.match(text)
    if not found or float(found.group(1)) <= 0:
        raise ZooError(
            "--timeout takes a duration.",
            expected="a positive number with s, m, h or d: 90s, 30m, 2h",
            fix="--timeout 30m",
            got=text,
        )
    return float(found.group(1)) * _SECONDS[found.group(2)]
