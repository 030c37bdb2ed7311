"""``python -m bench``: run the benchmarks and write BENCHMARKS.md."""

import sys

from bench.run import main

sys.exit(main())
