"""The ``editjudge`` command: the root only registers subcommands; each lives in its own module
and is imported when it runs.

``score`` and ``report`` need only the bare package (the client); ``demo`` imports the ``server``
extra when it runs. The GPU box's commands (``router``, ``serve``, ``compose``, ``fake-engine``)
import the ``server`` extra when they run, with a clear message if it is absent (:mod:`.box`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from . import box


class Command(Protocol):
    """What a command module provides."""

    def register(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# Client-side commands: name -> (module in this package with register(sub) and run(args), help).
CLIENT_COMMANDS = {
    "score": ("score", "score a JSONL/CSV file of edits against a router (resumable)"),
    "demo": ("demo", "try it without a GPU: fake engines, the router and a scored sample"),
    "report": (
        "report",
        "aggregate a results file per meta field (GEdit's way), or look at it in an HTML page",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The root parser with every subcommand registered (for ``editjudge --help`` and parsing)."""
    parser = argparse.ArgumentParser(
        prog="editjudge", description="Score image edits with a VLM judge."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in CLIENT_COMMANDS.items():
        _command_module(module).register(sub.add_parser(name, help=help_text))
    box.register(sub)
    return parser


def _command_module(name: str) -> Command:
    return cast(Command, importlib.import_module(f"{__name__}.{name}"))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``editjudge`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in box.COMMANDS:
        # Box commands parse their own options (argparse.REMAINDER would swallow --help).
        return box.run(args[0], args[1:])
    ns = build_parser().parse_args(args)
    module, _ = CLIENT_COMMANDS[ns.command]
    return int(_command_module(module).run(ns))


if __name__ == "__main__":
    sys.exit(main())
