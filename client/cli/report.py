"""``editjudge report``: a results file aggregated, or looked at.

Two modes on one results file (``editjudge score``'s output; the last line for an id is its
result):

* a table (default): per group of ``meta`` fields (``--by task_type``, ``--subset
  instruction_language=en``), the number of scored and error items and the mean of ``score`` and
  every sub-score, then the ``macro`` mean of the group means (GEdit-Bench's headline) and the
  ``overall`` mean over all scored items (:mod:`editjudge.client._aggregate`), as markdown, CSV or
  JSON (:mod:`editjudge.client._tables`);
* ``--html OUT.html``: one self-contained page (thumbnails inline, no network references) with
  every item's source and edit side by side, its instruction, scores, the judge's reasoning and
  errors; sortable and filterable, with the distribution of each sub-score and the worst items up
  front. ``--compare OTHER.jsonl`` sets a second run over the same ids beside the first.

Exit status: 0 done, 2 bad input or usage (a file missing or unreadable), 1 anything else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._aggregate import aggregate
from .._exceptions import EditJudgeError
from .._html_report import ReportOptions, Run, build, render
from .._inputs import InputFileError, read_items
from .._models import ScoreResult
from .._results import ResultFileError, read_results
from .._tables import RENDERERS
from ._help import ShowDefaults, non_negative


class UsageError(EditJudgeError):
    """The command line asks for something that cannot work."""


def register(p: argparse.ArgumentParser) -> None:
    """The ``report`` command's options."""
    p.description = (
        "Aggregate a results file from 'editjudge score' per group of meta fields (input columns "
        "other than id, image, source_image, instruction, protocol): each group's mean, the macro "
        "mean of the group means (GEdit-Bench's headline) and the overall mean; error items are "
        "counted, never averaged. Or, with --html, write one self-contained HTML page to look at "
        "the run (images, scores, reasoning; sortable, filterable), --compare a second beside it."
    )
    p.formatter_class = ShowDefaults
    p.add_argument("results", type=Path, metavar="RESULTS", help="JSONL results file")
    table = p.add_argument_group("table (the default mode)")
    table.add_argument(
        "--by", type=_fields, default=[], metavar="FIELD[,FIELD]", help="meta fields to group by"
    )
    table.add_argument(
        "--subset",
        type=_condition,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="keep results whose meta FIELD is VALUE (repeatable; all must hold)",
    )
    table.add_argument(
        "--format", choices=sorted(RENDERERS), default="markdown", help="how to write the table"
    )
    table.add_argument(
        "--metrics",
        type=_fields,
        metavar="NAME[,NAME]",
        help="metrics to report (default: score and every sub-score)",
    )
    table.add_argument("-o", "--output", type=Path, help="write here (default: standard output)")
    _register_html(p.add_argument_group("HTML page (--html)"))


def _register_html(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--html", type=Path, metavar="OUT", help="write the HTML report here")
    g.add_argument(
        "--inputs", type=Path, metavar="INPUT", help="the input file scored (for images and text)"
    )
    g.add_argument("--compare", type=Path, metavar="OTHER", help="a second results file")
    g.add_argument(
        "--compare-inputs",
        type=Path,
        metavar="INPUT",
        help="the second run's input file, when its edited images differ (default: --inputs)",
    )
    g.add_argument("--label", help="name of RESULTS' run (default: its file name)")
    g.add_argument("--compare-label", help="name of the compared run (default: its file name)")
    g.add_argument("--title", help="page title (default: from the file names)")
    g.add_argument(
        "--worst", type=non_negative, default=12, help="lowest-scored items shown up front"
    )
    g.add_argument("--thumb-size", type=_thumb, default=256, help="longest thumbnail side, pixels")


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


def _thumb(text: str) -> int:
    value = int(text)
    if not 16 <= value <= 2048:
        raise argparse.ArgumentTypeError(f"must be between 16 and 2048, not {value}")
    return value


def run(args: argparse.Namespace) -> int:
    """Run ``editjudge report`` with the options :func:`register` declared."""
    try:
        return run_html(args) if args.html is not None else run_table(args)
    except (InputFileError, ResultFileError, UsageError) as exc:
        _say(str(exc))
        return 2
    except EditJudgeError as exc:
        _say(f"error: {exc}")
        return 1


def run_table(args: argparse.Namespace) -> int:
    """Print (or write ``args.output``) the aggregation in ``args.format``."""
    if args.compare or args.inputs:
        raise UsageError("--inputs and --compare belong to the HTML page: add --html OUT.html")
    results = _results(args.results)
    text = RENDERERS[args.format](aggregate(results, args.by, dict(args.subset), args.metrics))
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
    return 0


def run_html(args: argparse.Namespace) -> int:
    """Write the HTML report ``args.html``."""
    if args.compare_inputs and not args.compare:
        raise UsageError("--compare-inputs needs --compare")
    runs = [_run(args.results, args.inputs, args.label)]
    if args.compare:
        label = args.compare_label or args.compare.name
        if label == runs[0].label:
            label += " (2)"
        runs.append(_run(args.compare, args.compare_inputs or args.inputs, label))
    title = args.title or " vs ".join(r.file for r in runs)
    options = ReportOptions(title=title, worst=args.worst, thumb_size=args.thumb_size)
    data = build(runs, options, progress=_progress)
    page = render(data)
    try:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.html}: {exc.strerror}") from None
    if data["images"] and sys.stderr.isatty():
        sys.stderr.write("\n")  # end the progress line
    megabytes = len(page.encode()) / 1e6
    counts = f"{len(data['items'])} items, {len(data['images'])} images"
    _say(f"report written to {args.html}: {counts}, {megabytes:.1f} MB")
    for problem in data["image_problems"][:5]:
        _say(f"note: {problem}")
    return 0


def _results(path: Path) -> list[ScoreResult]:
    if not path.is_file():
        raise ResultFileError(f"results file not found: {path}")
    return read_results(path)


def _run(results_path: Path, inputs: Path | None, label: str | None) -> Run:
    results = _results(results_path)
    items = read_items(inputs) if inputs is not None else None
    return Run(label or results_path.name, results_path.name, results, items)


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\reditjudge: thumbnails {done}/{total}")
        sys.stderr.flush()


def _say(message: str) -> None:
    sys.stderr.write(f"editjudge: {message}\n")
    sys.stderr.flush()
