"""What planning a run's stages needs from a run that is set up (:class:`RunContext`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoo.components import Splits
    from zoo.model.assemble import Assembled
    from zoo.runconfig import RunConfig
    from zoo.train.distribute import Placement
    from zoo.train.events import Events
    from zoo.train.record import Timer


@dataclass(frozen=True)
class RunContext:
    """What planning the stages needs from a run that is set up.

    Args:
        cache_dir: Where cached features persist (``None``: the default folder).
        cache_memory: Bytes of features kept in memory.
        cache_max: Bytes the cache folder may hold (``None``: no limit).
        backbone_digest: The backbone's weights digest (computed once, when first asked).
    """

    config: RunConfig
    placement: Placement
    precision: str
    assembled: Assembled
    splits: Splits
    timer: Timer
    events: Events
    cache_dir: Path | None
    cache_memory: int
    backbone_digest: Callable[[], str]
    cache_max: int | None = None
