"""What ``zoo tune`` shows: what it leaves out, a line per trial, the leaderboard, the end.

Rows arrive as plain data (``leaderboard.json``'s), so a study's stored values, which
another process or machine wrote, are shown as text, escaped like any file's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from zoo import console
from zoo.console import _escape, _table


def left_out(skipped: Sequence[Mapping[str, str]], offline: Sequence[str] = ()) -> None:
    """The backbones and heads a study does not search, each with why; those whose
    files are not here, in one line."""
    for item in skipped:
        console.warning(f"left out {item['kind']} {item['name']}: {item['reason']}")
    if offline:
        console.status(
            f"left out {len(offline)} backbones whose files are not here offline: "
            f"{', '.join(offline)} (zoo fetch NAME downloads one; --backbones NAME "
            "tries it anyway)"
        )


def trial(
    number: int,
    done: str,
    label: str,
    value: float | None,
    metric: str,
    seconds: float | None,
    note: str | None,
) -> None:
    """One trial ended: what it drew, what it reached, how long it took."""
    reached = f"{metric} {value:.4f}" if value is not None else "no value"
    took = f" in {seconds:.1f}s" if seconds is not None else ""
    ending = f" ({note})" if note else ""
    console.status(f"trial {number} ({done}): {label}: {reached}{took}{ending}")


def leaderboard(rows: Sequence[Mapping[str, Any]], metric: str, limit: int | None = None) -> None:
    """The trials ranked: rank, backbone, head, the settings drawn, the metric (mean and
    spread over seeds when repeated), time, latency, size; Pareto trade-offs starred."""
    shown = list(rows)[:limit] if limit else list(rows)
    table = _table(f"{len(rows)} trials, ranked by {metric} on the validation split")
    headers = ("#", "trial", "backbone", "head", "settings", metric, "time", "ms/image", "MB", "")
    for header in headers:
        left = header in ("backbone", "head", "settings", "")
        table.add_column(header, justify="left" if left else "right", overflow="fold")
    for row in shown:
        table.add_row(*(_escape(cell) for cell in _cells(row)))
    console.out.print(table)
    if limit and len(rows) > limit:
        console.out.print(f"... and {len(rows) - limit} more (zoo tune --report shows all)")
    console.out.print("* on the Pareto front: no other trial is both better and faster")


def _cells(row: Mapping[str, Any]) -> list[str]:
    score, spread = row.get("score"), row.get("spread")
    value = f"{score:.4f}" if isinstance(score, int | float) else "-"
    if spread is not None:
        value += f" ± {spread:.4f} ({len(row['repeats'])} seeds)"
    state = row.get("state")
    mark = "*" if row.get("pareto") else str(state) if state != "complete" else ""
    if row.get("note") and state != "complete":
        mark = f"{mark}: {row['note']}"
    return [
        str(row.get("rank") or "-"),
        str(row.get("trial")),
        str(row.get("backbone")),
        str(row.get("head")),
        settings_text(row.get("settings") or {}),
        value,
        _number(row.get("seconds"), "{:.1f}s"),
        _number(row.get("latency_ms"), "{:.2f}"),
        _number(row.get("size_mb"), "{:.1f}"),
        mark,
    ]


def settings_text(settings: Mapping[str, Any]) -> str:
    """``learning_rate=0.0031 dropout=0.12``: what a trial drew, numbers to 2 digits."""
    return " ".join(
        f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(settings.items())
    )


def _number(value: Any, form: str) -> str:
    return form.format(value) if isinstance(value, int | float) else "-"


def ended(summary: Mapping[str, Any]) -> None:
    """The study's end: the trial chosen, its one test score, its recipe and run."""
    metric = summary["metric"]
    spread = summary.get("spread")
    chosen = f"trial {summary['chosen']}: {metric} {summary['score']:.4f}"
    if spread is not None:
        chosen += f" ± {spread:.4f} over seeds"
    console.out.print(f"chosen: {_escape(chosen)}")
    test = summary.get("test") or {}
    if test:
        scored = "  ".join(
            f"{k} {v:.4f}" for k, v in sorted(test.items()) if isinstance(v, int | float)
        )
        console.out.print(f"test split, scored once, for the chosen trial only: {_escape(scored)}")
    console.out.print(f"run directory (model.keras): {_escape(summary['final_run'])}")
    console.out.print(f"recipe: zoo run --recipe {_escape(summary['recipe'])}")
    if summary.get("figure"):
        console.out.print(f"figure: {_escape(summary['figure'])}")


def still_running(summary: Mapping[str, Any]) -> None:
    """This process is done but others still train trials: the last one ends the study."""
    console.status(
        f"{summary['running']} trial(s) of study {summary['study']} still running in other "
        "processes; the last to finish ends the study (or run zoo tune --report later)"
    )
