"""A rich table that wraps its cells between words where the terminal allows."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions
from rich.table import Table

_SHORT = 16  # cells, padding included


class WordTable(Table):
    """A rich table that, when too wide for the terminal, narrows each column no further
    than its longest word (where they all fit): rich alone narrows the widest columns
    first, folding words such as ``lr_schedule=cosine`` mid-word. A column of short
    values keeps them whole: "entry point" is not worth two lines."""

    def _calculate_column_widths(self, console: Console, options: ConsoleOptions) -> list[int]:
        ranges = [self._measure_column(console, options, column) for column in self.columns]
        # A column whose widest cell is short ("entry point", "built-in") never folds.
        lows = [r.maximum if r.maximum <= _SHORT else r.minimum for r in ranges]
        wants = [r.maximum - r.minimum for r in ranges]
        spare = options.max_width - sum(lows)
        if self.expand or spare >= sum(wants) or options.max_width < 4 * len(lows):
            return super()._calculate_column_widths(console, options)
        if spare < 0:  # the longest words do not fit: fold the longest, the names last
            for _ in range(-spare):
                rest = max(lows[1:], default=0)
                lows[lows.index(rest, 1) if rest > 4 else lows.index(max(lows))] -= 1
            return lows
        # Share the room beyond the longest words in proportion to what each column wants.
        shares = [spare * want // sum(wants) for want in wants]
        for index in sorted(range(len(wants)), key=lambda i: shares[i] - wants[i]):
            if sum(shares) == spare:
                break
            shares[index] += shares[index] < wants[index]
        return [low + share for low, share in zip(lows, shares, strict=True)]
