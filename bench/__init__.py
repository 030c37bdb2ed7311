"""zoo's benchmarks: zoo against a plain Keras run, side by side, in one command.

``python -m bench --quick`` (a few minutes on 2 CPU cores) or ``python -m bench --full``
runs every benchmark and writes ``BENCHMARKS.md`` at the repository root. Each figure
is measured in its own process, alternating with its peer, so both see the same
machine; the report gives medians, spreads and ratios measured in the same invocation.
Benchmarks are not tests: the test suite checks that this code runs, never a time.
"""
