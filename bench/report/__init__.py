"""The one report of every benchmark: numbers from the load generator's outcomes
(:mod:`~bench.report.numbers`), markdown tables (:mod:`~bench.report.tables`) and the GPU phases'
results as the tables of BENCHMARKS.md (:mod:`~bench.report.gpu`; ``python -m bench.report DIR``).
"""

from __future__ import annotations

from bench.report.gpu import Recorder, render
from bench.report.numbers import Measurement, commit, group_ratios, group_row, meta, pct, tally
from bench.report.tables import GROUP_COLUMNS, Result, Row, cell, md_table

__all__ = [
    "GROUP_COLUMNS",
    "Measurement",
    "Recorder",
    "Result",
    "Row",
    "cell",
    "commit",
    "group_ratios",
    "group_row",
    "md_table",
    "meta",
    "pct",
    "render",
    "tally",
]
