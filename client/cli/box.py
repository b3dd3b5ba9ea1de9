"""The GPU box's commands, which belong to the ``server`` extra: ``router``, ``serve``,
``compose`` and ``fake-engine``. Each is the ``main(argv)`` of a server module, imported when the
command runs, so the bare client install never loads the server's dependencies."""

from __future__ import annotations

import argparse
import importlib
import sys

from .._install import install_hint

# command -> (module with ``main(argv) -> int``, help)
COMMANDS = {
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

INSTALL_HINT = install_hint("server")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """List the box commands in ``editjudge --help``; their own parsers handle their options."""
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)


def run(name: str, argv: list[str]) -> int:
    """Run box command ``name`` with ``argv``, or explain how to install the server extra."""
    module = COMMANDS[name][0]
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        sys.stderr.write(
            f"editjudge {name}: this command needs the server extra ({exc}); {INSTALL_HINT}\n"
        )
        return 2
    return int(mod.main(argv) or 0)
