"""The ``editjudge`` command.

``editjudge score`` needs only the bare package (the client). ``router``, ``serve`` and ``compose``
belong to the GPU box and import the ``server`` extra lazily, with a clear message if it is absent.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# subcommand -> (module with a ``main(argv) -> int``, help)
_SERVER_COMMANDS = {
    "router": ("server.__main__", "run the scoring router (settings: EDITJUDGE_* variables)"),
    "serve": ("server.launcher", "start one vLLM server per GPU plus the router (bare metal)"),
    "compose": ("server.compose", "write docker-compose.yml for a list of GPUs"),
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
    for name, (module, help_text) in _SERVER_COMMANDS.items():
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)
        p.set_defaults(func=_server_main(module))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in _SERVER_COMMANDS:
        # Server commands parse their own options (argparse.REMAINDER would swallow --help).
        return _server_main(_SERVER_COMMANDS[args[0]][0])(args[1:])
    ns = build_parser().parse_args(args)
    return int(ns.func(list(ns.args)))


if __name__ == "__main__":
    sys.exit(main())
