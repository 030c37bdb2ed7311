"""What "better" means: the monitored metric, and a count of epochs without improvement.

One :class:`Monitor` (``--monitor``) serves keeping the best epoch, early stopping and
the plateau schedule, so the three never disagree about which epoch was best.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from zoo.errors import ZooError


@dataclass(frozen=True)
class Monitor:
    """A validation metric and its direction: losses go down, accuracies up."""

    name: str = "val_loss"

    @property
    def higher_is_better(self) -> bool:
        return not self.name.endswith("loss")

    def better(self, value: float, than: float | None) -> bool:
        """``value`` improves strictly on ``than`` (anything beats ``None``)."""
        if than is None:
            return True
        return value > than if self.higher_is_better else value < than

    def value(self, logs: Mapping[str, float]) -> float:
        """The monitored value of an epoch's metrics.

        Raises:
            ZooError: the head reports no such metric.
        """
        if self.name not in logs:
            reported = ", ".join(name for name in logs if name.startswith("val_"))
            raise ZooError(
                f"--monitor {self.name}: the head reports no {self.name.removeprefix('val_')}.",
                expected=f"one of the validation metrics it reports: {reported}",
                fix="pass --monitor val_loss (every head reports its loss)",
                got=self.name,
            )
        return float(logs[self.name])


@dataclass
class Improvement:
    """The best monitored value so far, and epochs since it was reached."""

    monitor: Monitor = field(default_factory=Monitor)
    best: float | None = None
    wait: int = 0

    def update(self, value: float) -> int:
        """Count one epoch's value; return the epochs without improvement."""
        if self.monitor.better(value, self.best):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        return self.wait

    @classmethod
    def replay(cls, monitor: Monitor, values: Iterable[float]) -> Improvement:
        """The state after these epochs: how a resumed stage keeps its count."""
        state = cls(monitor)
        for value in values:
            state.update(value)
        return state
