"""A study's leaderboard: its trials ranked, the best trade-offs, and their figure.

Rows come from the study's stored trials (what each recorded: its run directory, time,
latency, size) and from the repeats of the leading ones. Completed trials rank by the
study's metric (the mean over their seeds once repeated), then pruned ones by the value
they were stopped at; failed ones are listed last with their error. A trial is on the
Pareto front when no other is at least as good on the metric and at least as fast, and
better at one of the two.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.model.scoring import write_figure
from zoo.storage import runs

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

JSON, FIGURE = "leaderboard.json", "leaderboard.png"
#: The study's metrics, and whether higher is better.
METRICS = {"val_accuracy": True, "val_loss": False}


@dataclass
class Row:
    """One trial on the leaderboard."""

    trial: int
    state: str
    backbone: str
    head: str
    settings: dict[str, Any]
    value: float | None
    seconds: float | None = None
    latency_ms: float | None = None
    size_mb: float | None = None
    run_dir: str | None = None
    repeats: list[float] = field(default_factory=list)
    rank: int | None = None
    pareto: bool = False
    note: str | None = None

    @property
    def score(self) -> float | None:
        """The value it ranks by: the mean over its seeds when repeated."""
        return statistics.fmean(self.repeats) if self.repeats else self.value

    @property
    def spread(self) -> float | None:
        """The standard deviation over its seeds (``None``: fewer than two)."""
        return statistics.stdev(self.repeats) if len(self.repeats) > 1 else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "score": self.score, "spread": self.spread}


def rows(study: optuna.Study, metric: str) -> list[Row]:
    """Every trial of ``study`` as a row, ranked (see the module's docstring)."""
    from optuna.trial import TrialState

    repeats = study.user_attrs.get("repeats")
    repeats = repeats if isinstance(repeats, dict) else {}
    found = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (TrialState.RUNNING, TrialState.WAITING):
            continue
        attrs = trial.user_attrs
        settings = {k: v for k, v in trial.params.items() if k not in ("backbone", "head")}
        found.append(
            Row(
                trial=trial.number,
                state=trial.state.name.lower(),
                backbone=str(trial.params.get("backbone", "?")),
                head=str(trial.params.get("head", "?")),
                settings=settings,
                value=trial.value if trial.state != TrialState.FAIL else None,
                seconds=_number(attrs.get("seconds")),
                latency_ms=_number(attrs.get("latency_ms")),
                size_mb=_number(attrs.get("size_mb")),
                run_dir=_text(attrs.get("run_dir")),
                repeats=_numbers(repeats.get(str(trial.number))),
                note=_text(attrs.get("error") or attrs.get("pruned")),
            )
        )
    return ranked(found, METRICS[metric])


def _number(value: Any) -> float | None:
    """A stored number, or ``None`` for anything else (a study another process wrote
    is data: a value of the wrong type is left out, not trusted)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def _numbers(values: Any) -> list[float]:
    found = [_number(v) for v in values] if isinstance(values, list) else []
    return [v for v in found if v is not None]


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


def ranked(found: Sequence[Row], higher: bool) -> list[Row]:
    """Completed first, best first; then pruned; then failed. Ranks and the Pareto front
    are set on the completed ones."""
    sign = -1 if higher else 1
    order = {"complete": 0, "pruned": 1, "fail": 2}

    def key(row: Row) -> tuple[int, bool, float, int]:
        score = row.score  # a row without one goes after those of its state with one
        value = sign * score if score is not None else 0.0
        return (order.get(row.state, 3), score is None, value, row.trial)

    result = sorted(found, key=key)
    complete = [r for r in result if r.state == "complete" and r.score is not None]
    for rank, row in enumerate(complete, 1):
        row.rank = rank
    for row in pareto(complete, higher):
        row.pareto = True
    return result


def pareto(found: Sequence[Row], higher: bool) -> list[Row]:
    """The rows no other beats on both the metric and the latency."""
    sign = 1 if higher else -1
    timed = [r for r in found if r.latency_ms is not None and r.score is not None]

    def beats(a: Row, b: Row) -> bool:
        assert a.score is not None and b.score is not None
        assert a.latency_ms is not None and b.latency_ms is not None
        at_least = sign * a.score >= sign * b.score and a.latency_ms <= b.latency_ms
        return at_least and (sign * a.score > sign * b.score or a.latency_ms < b.latency_ms)

    return [r for r in timed if not any(beats(o, r) for o in timed if o is not r)]


def write(folder: Path, board: Sequence[Row], summary: Mapping[str, Any], metric: str) -> Path:
    """Write ``leaderboard.json`` and the figure into ``folder``; return the figure's path."""
    runs.write_json(folder / JSON, {**summary, "rows": [r.to_json() for r in board]})
    path = folder / FIGURE
    write_figure(figure(board, metric), path, fix="pass another --output DIR")
    return path


def figure(board: Sequence[Row], metric: str) -> Figure:
    """The metric against latency per image for the completed trials, the Pareto front
    joined and marked, the winner (rank 1) named."""
    from matplotlib.figure import Figure

    drawn = Figure(figsize=(7.5, 5), dpi=100, layout="constrained")
    ax = drawn.subplots()
    timed = [r for r in board if r.rank is not None and r.latency_ms is not None]
    points = {id(r): (r.latency_ms or 0.0, r.score or 0.0) for r in timed}
    backbones = sorted({r.backbone for r in timed})
    for index, backbone in enumerate(backbones):
        mine = [r for r in timed if r.backbone == backbone]
        ax.scatter(
            [points[id(r)][0] for r in mine],
            [points[id(r)][1] for r in mine],
            color=f"C{index % 10}",
            alpha=0.6,
            label=backbone,
        )
    front = sorted((r for r in timed if r.pareto), key=lambda r: r.latency_ms or 0.0)
    if front:
        ax.plot(
            [points[id(r)][0] for r in front],
            [points[id(r)][1] for r in front],
            color="black",
            marker="o",
            fillstyle="none",
            markersize=11,
            linestyle="--",
            label="best trade-offs (Pareto front)",
        )
    winner = next((r for r in timed if r.rank == 1), None)
    if winner is not None:
        ax.annotate(
            f"trial {winner.trial}: {winner.backbone}",
            (winner.latency_ms or 0.0, winner.score or 0.0),
            textcoords="offset points",
            xytext=(8, -14),
        )
    if timed and max(r.latency_ms or 0.0 for r in timed) > 10 * min(
        r.latency_ms or 1.0 for r in timed
    ):
        ax.set_xscale("log")
    ax.set_xlabel("latency per image (ms)")
    ax.set_ylabel(f"{metric} (validation; mean over seeds when repeated)")
    ax.set_title(f"{len(timed)} completed trials")
    ax.legend(fontsize="small")
    return drawn
