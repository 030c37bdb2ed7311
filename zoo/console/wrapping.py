"""A rich table that wraps its cells between words where the terminal allows."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions
from rich.table import Table

_SHORT = 16  # cells, padding included


class WordTable(Table):
    """A rich table that, when too wide for the terminal, narrows each column no further
    than its longest word (where they all fit): rich alone narrows the widest columns
    first, folding words such as ``lr_schedule=cosine`` mid-word. A column of short
    values keeps them whole ("entry point" is not worth two lines); the room left is
    shared evenly, each column taking no more than it wants."""

    def _calculate_column_widths(self, console: Console, options: ConsoleOptions) -> list[int]:
        ranges = [self._measure_column(console, options, column) for column in self.columns]
        # A column whose widest cell is short ("entry point", "built-in") never folds.
        lows = [r.maximum if r.maximum <= _SHORT else r.minimum for r in ranges]
        wants = [r.maximum - low for r, low in zip(ranges, lows, strict=True)]
        spare = options.max_width - sum(lows)
        if self.expand or spare >= sum(wants) or options.max_width < 4 * len(lows):
            return super()._calculate_column_widths(console, options)
        if spare < 0:  # the longest words do not fit: fold the longest, the names last
            for _ in range(-spare):
                rest = max(lows[1:], default=0)
                lows[lows.index(rest, 1) if rest > 4 else lows.index(max(lows))] -= 1
            return lows
        # Share the room beyond the longest words evenly: a column that wants less than
        # its even share gets all it wants, and the others split what is left.
        shares = [0] * len(wants)
        waiting = sorted(range(len(wants)), key=lambda i: wants[i])
        while waiting:
            index = waiting.pop(0)
            shares[index] = min(wants[index], spare // (len(waiting) + 1))
            spare -= shares[index]
        return [low + share for low, share in zip(lows, shares, strict=True)]
