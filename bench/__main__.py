"""``python -m bench``: run the benchmarks and write BENCHMARKS.md.

``python -m bench exports`` runs benchmark 8 alone (about 16 minutes on 2 cores with
``--full``) and merges its section into BENCHMARKS.md; the other benchmarks' runs keep
that section as it was.
"""

import sys
from pathlib import Path

from bench import exports, report
from bench.run import main, parse


def run(argv: list[str]) -> int:
    """Benchmark 8 alone, merged in; or the others, keeping benchmark 8's section."""
    if argv[:1] == ["exports"]:
        return exports.main(argv[1:])
    output = Path(parse(argv).output)
    before = output.read_text(encoding="utf-8") if output.exists() else ""
    code = main(argv)
    if code == 0 and before:
        after = report.keep(before, output.read_text(encoding="utf-8"), exports.TITLE)
        output.write_text(after, encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
