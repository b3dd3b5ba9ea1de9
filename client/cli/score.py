"""``editjudge score``: score a JSONL/CSV file of edits into a resumable JSONL file of results.

Exit status: 0 done (item-level errors are results, counted in the summary), 1 the server could
not be used (unreachable, refused the key, kept failing), 2 bad input or usage, 130 interrupted.
Every failure is one line on stderr; saved results are kept and a rerun resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from .._async_client import API_KEY_ENV, DEFAULT_URL, AsyncClient, normalise_url
from .._exceptions import EditJudgeError
from .._inputs import InputFileError, missing_files, read_items
from .._models import Item, ScoreResult, ServerInfo
from .._report import PLOT_HINT, plot_available, print_summary, write_histogram
from .._results import ResultFileError, ResultLog
from .._retry import RetryPolicy
from ._help import ShowDefaults, non_negative, positive


class UsageError(EditJudgeError):
    """The command line asks for something that cannot work."""


@dataclass
class _Run:
    written: int = 0


SERVER_ENV = "EDITJUDGE_SERVER"


def register(p: argparse.ArgumentParser) -> None:
    """The ``score`` command's options."""
    p.description = (
        "Score every row of INPUT (JSONL or CSV with id, image, source_image, instruction; "
        "paths relative to INPUT) and append one JSON result per line to OUTPUT. Rerunning with "
        "the same OUTPUT skips ids already there; the last line for an id is its result."
    )
    p.formatter_class = ShowDefaults
    p.add_argument("input", type=Path, metavar="INPUT", help="JSONL or CSV file of items")
    p.add_argument("-o", "--output", type=Path, required=True, help="JSONL file of results")
    p.add_argument(
        "--server",
        metavar="URL",
        type=_url,
        default=os.environ.get(SERVER_ENV, DEFAULT_URL),
        help=f"router URL; ${SERVER_ENV} sets the default (default: %(default)s)",
    )
    p.add_argument("--api-key", metavar="KEY", help=f"API key (default: ${API_KEY_ENV}, else none)")
    p.add_argument(
        "--concurrency",
        metavar="N",
        type=positive,
        help="batch requests in flight (default: enough for the items in flight the router "
        "suggests for its healthy engines)",
    )
    p.add_argument("--batch-size", metavar="N", type=positive, default=16, help="items per request")
    p.add_argument(
        "--protocol", metavar="NAME", help="scoring protocol (default: the router's default)"
    )
    p.add_argument(
        "--max-pixels",
        metavar="N",
        type=positive,
        help="downscale images above this many pixels (default: the router's own cap)",
    )
    p.add_argument(
        "--timeout",
        metavar="S",
        type=float,
        help="seconds to wait for one answer (default: the router's request deadline + 30)",
    )
    p.add_argument(
        "--retries", metavar="N", type=non_negative, default=7, help="retries per request"
    )
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="score again the items whose latest result in OUTPUT is an error; the new result "
        "is appended and supersedes the old line (default: off, errors count as done)",
    )
    p.add_argument(
        "--plot", type=Path, metavar="PNG", help="write a histogram of the scores (default: none)"
    )


def _url(text: str) -> str:
    try:
        return normalise_url(text)
    except (ValueError, httpx.InvalidURL) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Run ``editjudge score`` with the options :func:`register` declared."""
    state = _Run()
    try:
        return _run(args, state)
    except KeyboardInterrupt:
        _say(f"interrupted; {_saved(args, state)}; rerun the same command to resume")
        return 130
    except (InputFileError, ResultFileError, UsageError) as exc:
        _say(str(exc))
        return 2
    except EditJudgeError as exc:
        _say(f"error: {exc}{_resume(args, state)}")
        return 1
    except Exception as exc:  # a bug: still one line, and what was saved stays saved
        _say(f"unexpected error: {type(exc).__name__}: {exc}{_resume(args, state)}")
        return 1


def _resume(args: argparse.Namespace, state: _Run) -> str:
    return f"; {_saved(args, state)}; rerun to resume" if state.written else ""


def _run(args: argparse.Namespace, state: _Run) -> int:
    if args.plot and not plot_available():
        raise UsageError(PLOT_HINT)
    items = read_items(args.input)
    with ResultLog(args.output) as log:
        if log.repaired:
            _say(f"note: cut off an incomplete last line of {args.output} (interrupted write)")
        todo = _plan(items, log, args)
        _note_missing_files(todo)
        if todo:
            asyncio.run(_score_all(todo, args, log, state))
        results = [log.saved[str(item.id)] for item in items if item.id in log.saved]
    print_summary(results, Console(highlight=False))
    if args.plot:
        if write_histogram(results, args.plot):
            _say(f"histogram written to {args.plot}")
        else:
            _say("no scores to plot")
    return 0


def _plan(items: list[Item], log: ResultLog, args: argparse.Namespace) -> list[Item]:
    """The items to score now: those without a result, and with ``--retry-errors`` those whose
    latest result is an error. Says what it found."""
    saved = [log.saved[str(item.id)] for item in items if item.id in log.saved]
    errors = sum(not r.ok for r in saved)
    redo = errors if args.retry_errors else 0
    todo = [
        item
        for item in items
        if item.id not in log.saved or (args.retry_errors and not log.saved[str(item.id)].ok)
    ]
    done = f"{len(saved)} already in {args.output}"
    if redo:
        done += f", {redo} of them errors to score again"
    elif errors:
        done += f" ({errors} of them errors: --retry-errors scores those again)"
    _say(f"{len(items)} items in {args.input}: {done}, {len(todo) - redo} new to score")
    return todo


def _note_missing_files(todo: list[Item]) -> None:
    missing = missing_files(todo)
    if missing:
        item_id, path = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        _say(
            f"note: image not found for id {item_id!r}: {path}{more}; such rows become error "
            "results (file_not_found) and the run goes on"
        )


async def _score_all(
    todo: list[Item], args: argparse.Namespace, log: ResultLog, state: _Run
) -> None:
    client = AsyncClient(
        args.server,
        api_key=args.api_key,
        timeout=args.timeout,
        retry=RetryPolicy(max_attempts=args.retries + 1),
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        max_pixels=args.max_pixels,
    )
    counts: Counter[str] = Counter()
    async with client:
        _say(_in_flight_plan(client, await client.info()))
        with _progress() as progress:
            task = progress.add_task("scoring", total=len(todo), ok=0, errors=0)

            def on_result(index: int, result: ScoreResult) -> None:
                item_id = todo[index].id
                if result.id != item_id:  # the id of the input row is what resume matches on
                    result = result.model_copy(update={"id": item_id})
                log.append(result)
                state.written += 1
                counts[result.status] += 1
                progress.update(task, advance=1, ok=counts["ok"], errors=counts["error"])

            await client.score_many(todo, protocol=args.protocol, on_result=on_result)


def _in_flight_plan(client: AsyncClient, info: ServerInfo) -> str:
    """One line on how much work this run keeps in flight, and why."""
    requests, batch = client.concurrency_for(info), client.batch_size_for(info)
    plan = f"{requests} request(s) of up to {batch} items in flight"
    if client.concurrency is not None:
        return f"{plan} (--concurrency)"
    cap = info.capacity
    if cap is None or cap.suggested_items_in_flight <= 0:
        return f"{plan} (the router suggests none; --concurrency overrides)"
    return (
        f"{plan}: the router has {cap.healthy_backends} healthy engine(s) and suggests "
        f"{cap.suggested_items_in_flight} items in flight (--concurrency overrides)"
    )


def _rate(task: Task) -> float | None:
    # Results arrive a batch at a time, so rich's sliding-window speed jumps; use the run's mean.
    if not task.completed or not task.elapsed:
        return None
    return task.completed / task.elapsed


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        rate = _rate(task)
        return Text("-- items/s" if rate is None else f"{rate:.1f} items/s", style="cyan")


class _EtaColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        rate = _rate(task)
        if task.finished or rate is None or task.total is None:
            return Text("ETA --:--", style="magenta")
        seconds = int((task.total - task.completed) / rate)
        eta = f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        return Text(f"ETA {eta}", style="magenta")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[errors]} error[/]"),
        TimeElapsedColumn(),
        _EtaColumn(),
        console=Console(stderr=True),
    )


def _saved(args: argparse.Namespace, state: _Run) -> str:
    return f"{state.written} new result(s) saved in {args.output}"


def _say(message: str) -> None:
    # Plain writes: rich would wrap long lines and read [brackets] in messages as markup.
    sys.stderr.write(f"editjudge: {message}\n")
    sys.stderr.flush()
