"""``editjudge demo``: the whole service on this machine, without a GPU, in one command.

It starts fake engines (``editjudge.server.testing``) and the real router on loopback, draws a
small sample of source/edit pairs into a folder, scores it with ``editjudge score``'s own code
and defaults, and prints the summary. With ``--keep`` it then prints curl, CLI and Python lines
to try against the router and serves until Ctrl-C. Needs the ``server`` extra, imported only
when the command runs.

The scores are a fake judge's (arbitrary but valid); everything else is the real path.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import shlex
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType, ModuleType
from typing import Protocol

from ._help import ShowDefaults, positive
from .box import INSTALL_HINT
from .score import run as run_score

# Where the fake engines and the router come from: the server extra.
_LOCAL_ROUTER = "editjudge.server.testing"


class _Box(Protocol):
    url: str

    @property
    def alive(self) -> bool: ...

    def __enter__(self) -> _Box: ...

    def __exit__(self, *exc: object) -> None: ...


_DEFAULT_PORT = 8000


def register(p: argparse.ArgumentParser) -> None:
    """The ``demo`` command's options."""
    p.description = (
        "Start fake engines and the router on 127.0.0.1, score a generated sample with "
        "'editjudge score', print the summary; with --keep, keep serving for you to try curl "
        "and Python against it. No GPU, no model download."
    )
    p.formatter_class = ShowDefaults
    p.add_argument("--engines", type=positive, default=2, metavar="N", help="fake engines")
    p.add_argument("--items", type=positive, default=8, metavar="N", help="sample items")
    p.add_argument(
        "--latency",
        type=float,
        default=0.05,
        metavar="S",
        help="seconds a fake engine takes per judge call",
    )
    p.add_argument(
        "--port",
        type=int,
        metavar="PORT",
        help=f"router port (default: {_DEFAULT_PORT}, or any free port if that is taken)",
    )
    p.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="write the sample and its results here (default: a temporary folder, removed at exit)",
    )
    p.add_argument("--keep", action="store_true", help="keep serving until Ctrl-C")


class _Stop(Exception):
    """Why the demo cannot go on, in one line, and its exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def run(args: argparse.Namespace) -> int:
    """Run ``editjudge demo``: exit status 0 done (after Ctrl-C with ``--keep`` too), 1 or 2 as
    ``editjudge score``'s (2 also without the server extra or a free port), 130 interrupted."""
    try:
        return _run(args)
    except _Stop as stop:
        _say(str(stop))
        return stop.status
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


def _run(args: argparse.Namespace) -> int:
    testing = _server_extra()
    from ._sample import write_sample

    sock = _bind(args.port)
    with contextlib.ExitStack() as stack:
        stack.callback(sock.close)
        folder = args.dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="editjudge-demo-"))
        )
        items = write_sample(folder, args.items)
        try:
            router = testing.LocalRouter(args.engines, latency_s=args.latency, sock=sock)
            box: _Box = stack.enter_context(router)
        except RuntimeError as exc:
            raise _Stop(str(exc), 1) from None
        _say(f"router on {box.url} in front of {args.engines} fake engine(s); sample in {folder}")
        status = run_score(_score_args(items, folder / "results.jsonl", box.url))
        if status != 0:
            return status
        if not args.keep:
            _say("rerun with --keep to keep the router serving and try curl and Python on it")
            return 0
        print(try_it(box.url, folder, items), flush=True)
        _serve_until_stopped(box)
    return 0


def _server_extra() -> ModuleType:
    try:
        return importlib.import_module(_LOCAL_ROUTER)
    except ImportError as exc:
        raise _Stop(f"demo needs the server extra ({exc}); {INSTALL_HINT}", 2) from None


def _bind(port: int | None) -> socket.socket:
    """A socket bound to 127.0.0.1: ``port``, or by default 8000 and else any free port."""
    candidates = [port] if port is not None else [_DEFAULT_PORT, 0]
    for candidate in candidates:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", candidate))
        except OSError as exc:
            sock.close()
            if candidate == candidates[-1]:
                why = f"cannot listen on 127.0.0.1:{candidate}: {exc.strerror}"
                raise _Stop(f"{why}; --port 0 takes any free port", 2) from None
        else:
            return sock
    raise AssertionError("unreachable")


def _score_args(items: Path, output: Path, url: str) -> argparse.Namespace:
    """``editjudge score ITEMS -o OUTPUT --server URL`` as its parser reads it: every other
    option at its default."""
    from . import build_parser

    argv = ["score", str(items), "-o", str(output), "--server", url]
    return build_parser().parse_args(argv)


def try_it(url: str, folder: Path, items: Path) -> str:
    """The lines to paste into another terminal while the demo router serves."""
    first = json.loads(items.read_text().splitlines()[0])  # the sample's own first edit
    edit, source = folder / first["image"], folder / first["source_image"]
    instruction = first["instruction"]
    q = shlex.quote
    curl = (
        f"curl -F image=@{q(str(edit))} -F source_image=@{q(str(source))} "
        f"-F instruction={q(instruction)} {url}/score"
    )
    cli = f"editjudge score {q(str(items))} -o {q(str(folder / 'mine.jsonl'))} --server {url}"
    python = (
        "from editjudge import Client\n"
        f"with Client({url!r}) as judge:\n"
        f"    r = judge.score({str(edit)!r}, {instruction!r}, source_image={str(source)!r})\n"
        "    print(r.status, r.score, r.scores)"
    )
    return (
        f"\nThe router serves on {url} until Ctrl-C. Try, in another terminal:\n\n"
        f"  {curl}\n  curl {url}/info\n  {cli}\n\nor in Python:\n\n{python}\n"
    )


def _serve_until_stopped(box: _Box) -> None:
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        while box.alive and not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    _say("stopped")


def _say(message: str) -> None:
    sys.stderr.write(f"editjudge demo: {message}\n")
    sys.stderr.flush()
