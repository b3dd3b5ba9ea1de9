"""The aggregation of a results file as text: markdown (for people), CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

from ._aggregate import Report

Renderer = Callable[[Report], str]


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n"


def _cell(value: object) -> str:
    if value is None:
        return "(none)"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _rows(report: Report) -> list[tuple[str, list[str], str, str, list[str]]]:
    """(row kind, key cells, n, errors, metric cells) for every group, then macro and overall."""
    rows = [
        (
            "group",
            [_cell(v) for v in g.key.values()],
            str(g.n),
            str(g.errors),
            [_number(g.mean.get(m)) for m in report.metrics],
        )
        for g in report.groups
    ]
    blank = [""] * len(report.by)
    macro = [_number(report.macro.get(m)) for m in report.metrics]
    overall = [_number(report.overall.get(m)) for m in report.metrics]
    rows.append(("macro", blank, "", "", macro))
    rows.append(("overall", blank, str(report.n), str(report.errors), overall))
    return rows


def render_markdown(report: Report) -> str:
    head = ["", *report.by, "n", "errors", *report.metrics]
    align = ["---"] * (1 + len(report.by)) + ["--:"] * (2 + len(report.metrics))
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for kind, keys, n, errors, values in _rows(report):
        label = "" if kind == "group" else f"**{kind}**"
        lines.append("| " + " | ".join([label, *keys, n, errors, *values]) + " |")
    subset = ", ".join(f"{k}={v}" for k, v in report.subset.items())
    notes = [
        f"{report.n} scored, {report.errors} error item(s) (counted, never averaged)"
        + (f"; subset {subset}" if subset else ""),
        "macro: the unweighted mean of the group means (GEdit-Bench's headline); overall: the "
        "mean over all scored items.",
    ]
    if any(v is None for v in report.macro.values()):
        notes.append("An empty macro cell: some group has no value for that metric.")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["row", *report.by, "n", "errors", *report.metrics])
    for kind, keys, n, errors, values in _rows(report):
        writer.writerow([kind, *keys, n, errors, *values])
    return out.getvalue()


RENDERERS: dict[str, Renderer] = {
    "markdown": render_markdown,
    "csv": render_csv,
    "json": render_json,
}
