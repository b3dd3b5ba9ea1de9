"""``python -m bench.report RESULTS_DIR``: the GPU phases' result files as markdown tables."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.report.gpu import render

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.report RESULTS_DIR")
    print(render(Path(sys.argv[1])))
