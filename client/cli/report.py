"""``editjudge report``: look at a results file, or compare two.

``--html OUT.html`` writes one self-contained page (thumbnails inline, no network references) with
every item's source and edit side by side, its instruction, scores, the judge's reasoning and
errors; sortable and filterable, with the distribution of each sub-score and the worst items up
front. ``--compare OTHER.jsonl`` sets a second run over the same ids beside the first: deltas and
the items that moved most.

Exit status: 0 written, 2 bad input or usage (a file missing or unreadable), 1 anything else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._exceptions import EditJudgeError
from .._html_report import ReportOptions, Run, build, render
from .._inputs import InputFileError, read_items
from .._results import ResultFileError, read_results
from ._help import ShowDefaults


class UsageError(EditJudgeError):
    """The command line asks for something that cannot work."""


def register(p: argparse.ArgumentParser) -> None:
    """The ``report`` command's options."""
    p.description = (
        "Look at the results of `editjudge score`: --html writes one self-contained HTML file "
        "(works offline, can be mailed) with each item's images, scores and reasoning, sortable "
        "and filterable; --compare sets a second run over the same ids beside it."
    )
    p.formatter_class = ShowDefaults
    p.add_argument("results", type=Path, metavar="RESULTS", help="JSONL results file")
    p.add_argument(
        "--inputs", type=Path, metavar="INPUT", help="the input file scored (for images and text)"
    )
    p.add_argument("--html", type=Path, metavar="OUT", help="write the HTML report here")
    p.add_argument("--compare", type=Path, metavar="OTHER", help="a second results file")
    p.add_argument(
        "--compare-inputs",
        type=Path,
        metavar="INPUT",
        help="the second run's input file, when its edited images differ (default: --inputs)",
    )
    p.add_argument("--label", help="name of RESULTS' run (default: its file name)")
    p.add_argument("--compare-label", help="name of the compared run (default: its file name)")
    p.add_argument("--title", help="page title (default: from the file names)")
    p.add_argument("--worst", type=_count, default=12, help="lowest-scored items shown up front")
    p.add_argument(
        "--thumb-size",
        type=_thumb,
        default=256,
        help="longest thumbnail side in pixels",
    )


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {value}")
    return value


def _thumb(text: str) -> int:
    value = int(text)
    if not 16 <= value <= 2048:
        raise argparse.ArgumentTypeError(f"must be between 16 and 2048, not {value}")
    return value


def run(args: argparse.Namespace) -> int:
    """Run ``editjudge report`` with the options :func:`register` declared."""
    try:
        if args.html is None:
            raise UsageError("nothing to write: give --html OUT.html")
        return run_html(args)
    except (InputFileError, ResultFileError, UsageError) as exc:
        _say(str(exc))
        return 2
    except EditJudgeError as exc:
        _say(f"error: {exc}")
        return 1


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


def _run(results_path: Path, inputs: Path | None, label: str | None) -> Run:
    if not results_path.is_file():
        raise ResultFileError(f"results file not found: {results_path}")
    results = read_results(results_path)
    items = read_items(inputs) if inputs is not None else None
    return Run(label or results_path.name, results_path.name, results, items)


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\reditjudge: thumbnails {done}/{total}")
        sys.stderr.flush()


def _say(message: str) -> None:
    sys.stderr.write(f"editjudge: {message}\n")
    sys.stderr.flush()
