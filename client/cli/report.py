"""``editjudge report``: a results file aggregated per group of ``meta`` fields (GEdit's way).

``editjudge report RESULTS.jsonl --by task_type --subset instruction_language=en`` prints, per task
type, the number of scored and error items and the mean of ``score`` and every sub-score, then the
``macro`` mean of the group means (GEdit-Bench's headline) and the ``overall`` mean over all scored
items (:mod:`editjudge.client._aggregate`). Formats are renderers in :data:`RENDERERS`; markdown,
for people, is the default.

Exit status: 0 done, 2 bad usage or an unreadable results file.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

from .._aggregate import Report, ResultsFileError, aggregate, read_results

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


def register(p: argparse.ArgumentParser) -> None:
    """The ``report`` command's options."""
    p.description = (
        "Aggregate a results file from 'editjudge score' per group of meta fields (input columns "
        "other than id, image, source_image, instruction, protocol): each group's mean, the macro "
        "mean of the group means (GEdit-Bench's headline) and the overall mean. Error items are "
        "counted, never averaged."
    )
    p.add_argument("results", type=Path, metavar="RESULTS.jsonl", help="results of editjudge score")
    p.add_argument(
        "--by", type=_fields, default=[], metavar="FIELD[,FIELD]", help="meta fields to group by"
    )
    p.add_argument(
        "--subset",
        type=_condition,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="keep results whose meta FIELD is VALUE (repeatable; all must hold)",
    )
    p.add_argument("--format", choices=sorted(RENDERERS), default="markdown")
    p.add_argument(
        "--metrics",
        type=_fields,
        metavar="NAME[,NAME]",
        help="metrics to report (default: score and every sub-score)",
    )
    p.add_argument("-o", "--output", type=Path, help="write here instead of standard output")


def _fields(text: str) -> list[str]:
    fields = [f.strip() for f in text.split(",") if f.strip()]
    if not fields:
        raise argparse.ArgumentTypeError("give at least one field name")
    return fields


def _condition(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, not {text!r}")
    return name.strip(), value


def run(args: argparse.Namespace) -> int:
    """Run ``editjudge report`` with the options :func:`register` declared."""
    try:
        report = aggregate(read_results(args.results), args.by, dict(args.subset), args.metrics)
        text = RENDERERS[args.format](report)
        if args.output is None:
            sys.stdout.write(text)
        else:
            args.output.write_text(text, encoding="utf-8")
    except ResultsFileError as exc:
        sys.stderr.write(f"editjudge: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"editjudge: cannot write {args.output}: {exc.strerror}\n")
        return 2
    return 0
