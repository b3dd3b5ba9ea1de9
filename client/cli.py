"""The ``editjudge`` command.

``editjudge score`` needs only the bare package (the client). ``router``, ``serve`` and ``compose``
belong to the GPU box and import the ``server`` extra lazily, with a clear message if it is absent.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from ._client import API_KEY_ENV, DEFAULT_URL, normalise_url

SERVER_ENV = "EDITJUDGE_SERVER"

# subcommand -> (module with a ``main(argv) -> int``, help)
_SERVER_COMMANDS = {
    "router": (
        "editjudge.server.__main__",
        "run the scoring router (settings: EDITJUDGE_* variables)",
    ),
    "serve": (
        "editjudge.server.box.launcher",
        "start one vLLM server per GPU plus the router (bare metal)",
    ),
    "compose": ("editjudge.server.box.compose", "write docker-compose.yml for a list of GPUs"),
    "fake-engine": (
        "editjudge.server.testing.fake_engine",
        "serve a fake vLLM judge (for tests and demos without a GPU)",
    ),
}


def _server_main(module: str) -> Callable[[list[str]], int]:
    def run(argv: list[str]) -> int:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            sys.stderr.write(
                f"editjudge: this command needs the server extra: "
                f"pip install 'editjudge[server]' ({exc})\n"
            )
            return 2
        return int(mod.main(argv) or 0)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="editjudge", description="Score image edits with a VLM judge."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_score(sub)
    # Listed for --help only: main() hands these to their own parsers before argparse runs.
    for name, (_, help_text) in _SERVER_COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _add_score(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "score",
        help="score a JSONL/CSV file of edits against a router (resumable)",
        description="Score every row of INPUT (JSONL or CSV with id, image, source_image, "
        "instruction; paths relative to INPUT) and append one JSON result per line to OUTPUT. "
        "Rerunning with the same OUTPUT skips ids already there.",
    )
    p.add_argument("input", type=Path, metavar="INPUT", help="JSONL or CSV file of items")
    p.add_argument("-o", "--output", type=Path, required=True, help="JSONL file of results")
    p.add_argument(
        "--server",
        type=_url,
        default=os.environ.get(SERVER_ENV, DEFAULT_URL),
        help=f"router URL (default: ${SERVER_ENV} or {DEFAULT_URL})",
    )
    p.add_argument("--api-key", help=f"API key (default: ${API_KEY_ENV})")
    p.add_argument(
        "--concurrency",
        type=_positive,
        help="batch requests in flight (default: sized from the router's healthy engines)",
    )
    p.add_argument("--batch-size", type=_positive, default=16, help="items per request")
    p.add_argument("--protocol", help="scoring protocol (default: the router's)")
    p.add_argument("--max-pixels", type=_positive, help="downscale images above this size")
    p.add_argument("--timeout", type=float, help="seconds to wait for one answer")
    p.add_argument("--retries", type=_non_negative, default=7, help="retries per request")
    p.add_argument("--plot", type=Path, metavar="PNG", help="write a histogram of the scores")


def _url(text: str) -> str:
    try:
        return normalise_url(text)
    except (ValueError, httpx.InvalidURL) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in _SERVER_COMMANDS:
        # Server commands parse their own options (argparse.REMAINDER would swallow --help).
        return _server_main(_SERVER_COMMANDS[args[0]][0])(args[1:])
    ns = build_parser().parse_args(args)  # "score" is the only command left to parse here
    from ._score_cmd import run  # rich and the runner load only when scoring

    return run(ns)


if __name__ == "__main__":
    sys.exit(main())
