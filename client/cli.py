"""The ``editjudge`` command. Server subcommands import the server extra lazily."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _router(args: argparse.Namespace) -> int:
    try:
        from server.__main__ import main as router_main
    except ImportError as exc:
        sys.stderr.write(
            f"editjudge router needs the server extra: pip install 'editjudge[server]' ({exc})\n"
        )
        return 2
    router_main()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="editjudge", description="Score image edits with a VLM judge."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("router", help="run the scoring router (settings: EDITJUDGE_* variables)")
    p.set_defaults(func=_router)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
