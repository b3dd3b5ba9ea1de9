"""``editjudge serve``: one vLLM server per GPU plus the router, in one supervised process tree.

Each engine runs as ``vllm serve --model M --port BASE+i`` with ``CUDA_VISIBLE_DEVICES=i``, pinned
to its share of the CPU cores (:mod:`editjudge.server.box.placement`), its output prefixed with
``[GPU i]``. The router starts in this process as soon as the first engine is healthy and routes to
the others as they come up. An engine that dies is restarted with exponential backoff (1 s,
doubling up to ``--max-backoff``) while the router keeps routing to the rest. SIGTERM or Ctrl-C
drains the router's in-flight requests, then stops every engine (SIGTERM to its process group,
SIGKILL after ``--stop-timeout``), leaving no process behind.

Engines that cannot start fail loudly instead of leaving the launcher waiting: an engine command
that cannot be executed (vLLM not installed, a wrong ``--vllm-cmd``) ends the launcher at once
with exit status 1, and an engine that exits before its first healthy check
``--max-start-failures`` times in a row is given up with an error quoting its last output lines.
The other engines carry on; when none is left, the launcher stops with exit status 1. A crash
after an engine was healthy is no start failure: such an engine is restarted for as long as its
restarts get healthy.

Engine output never stops an engine: once our stdout is closed (``editjudge serve | tee log`` and
tee is gone), engine lines go to stderr, or nowhere, and the engines keep serving.

This module is the command line and the run loop. Beside it, in ``editjudge.server.box``:
``engines`` builds the engine commands, ``supervisor`` starts, restarts and stops them, ``output``
carries their output, and ``router`` runs the router next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import shlex
import signal
import sys
import textwrap
from collections.abc import Sequence

from ..catalog import check_protocols
from ..config import Settings
from ..protocols import TemplateError
from . import defaults
from .engines import DEFAULT_VLLM_CMD, build_engines, parse_gpus
from .output import QuietStreamHandler, say, settle_std_streams
from .router import bind_router, pin_router, router_server, serve_router
from .supervisor import INITIAL_BACKOFF_S, Supervision, supervise

log = logging.getLogger("editjudge.launcher")


async def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM (0), or until no engine can start or run (1)."""
    engines, router_cpus = build_engines(args, parse_gpus(args.gpus))
    sock = bind_router(args.host, args.port)
    try:
        server = router_server(args, [e.url for e in engines])
    except Exception as exc:  # before any engine starts: nothing to stop
        sock.close()
        say(f"editjudge serve: cannot build the router: {type(exc).__name__}: {exc}")
        return 1
    pin_router(router_cpus)
    sup = Supervision(
        engines, args.vllm_cmd, args.max_backoff, args.max_start_failures, args.stop_timeout
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sup.stopping.set)
    supervisors = []
    for engine in engines:
        task = asyncio.create_task(supervise(engine, sup))
        task.add_done_callback(functools.partial(sup.supervisor_done, engine))
        supervisors.append(task)
    try:
        await serve_router(args, sup, sock, server)
    finally:
        sup.stopping.set()
        sup.halt.set()
        await asyncio.gather(*supervisors, return_exceptions=True)
        sock.close()
    if sup.fatal:
        say(sup.fatal)
        return 1
    return 0


EPILOG = """\
When an engine cannot start, serve fails rather than waits: a missing or unexecutable engine
command ends it at once, and an engine that exits before its first healthy check
--max-start-failures times in a row is given up (its last output is logged); the others keep
serving, and with none left serve exits 1. Engines keep running if stdout is closed (a killed
`| tee`): their output then goes to stderr, or nowhere.

exit status: 0 after Ctrl-C or SIGTERM (in-flight requests are answered first); 1 when no engine
can start or run; 2 for a usage error or a broken protocol template.
"""


def _epilog() -> str:
    """The help's closing text: every engine's defaults (what `--` arguments override) first."""
    flags = "\n    ".join(f"{flag} {shlex.quote(value)}" for flag, value in defaults.engine_flags())
    lead = (
        "Every engine gets these vllm serve flags unless the arguments after -- set them "
        "(the model's own context caps --max-model-len):"
    )
    return f"{textwrap.fill(lead, 100)}\n    {flags}\n\n{EPILOG}"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (got {value})")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``editjudge serve`` command line."""
    p = argparse.ArgumentParser(
        prog="editjudge serve",
        description=__doc__.splitlines()[0].replace("``", ""),
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--gpus", default="all", help="'all' or a list like 0,1,2 (default: all)")
    p.add_argument(
        "--model", required=True, help="model id or path served by every engine (required)"
    )
    p.add_argument("--host", default="0.0.0.0", help="router bind address (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="router port (default: %(default)s)")
    _add_engine_options(p)
    p.add_argument(
        "--router-cpus",
        type=int,
        default=None,
        help="cores kept for the router (default: an eighth of the machine, 1 to 4)",
    )
    p.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin engines to cores or cap their thread pools (default: pinned)",
    )
    _add_supervision_options(p)
    p.add_argument(
        "vllm_args", nargs=argparse.REMAINDER, help="after '--': extra arguments for every engine"
    )
    return p


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine-base-port",
        type=int,
        default=8001,
        help="engine i listens on BASE+i (default: %(default)s)",
    )
    p.add_argument(
        "--engine-host", default="127.0.0.1", help="engine bind address (default: %(default)s)"
    )
    p.add_argument(
        "--vllm-cmd",
        default=DEFAULT_VLLM_CMD,
        help="how to start an engine, e.g. 'python -m vllm.entrypoints.openai.api_server' "
        "(default: '%(default)s')",
    )
    p.add_argument(
        "--api-server-count",
        default="auto",
        help="API server processes per engine: auto (from its cores), N, or 0 (leave it to "
        "vLLM) (default: %(default)s)",
    )


def _add_supervision_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-backoff",
        type=float,
        default=60.0,
        help=f"longest wait before restarting an engine, in seconds; the first wait is "
        f"{INITIAL_BACKOFF_S:g} s and each next one doubles (default: %(default)s)",
    )
    p.add_argument(
        "--max-start-failures",
        type=_positive_int,
        default=3,
        help="give up on an engine that exits this many times in a row before its first healthy "
        "check; serve exits 1 when no engine is left (default: %(default)s)",
    )
    p.add_argument(
        "--drain-timeout",
        type=int,
        default=30,
        help="on Ctrl-C or SIGTERM, how long the router waits for in-flight requests, in "
        "seconds, before the engines stop (default: %(default)s)",
    )
    p.add_argument(
        "--stop-timeout",
        type=float,
        default=30.0,
        help="how long an engine gets to stop after SIGTERM before SIGKILL, in seconds "
        "(default: %(default)s)",
    )


def check_engine_command(text: str) -> None:
    """Refuse an empty or unparsable ``--vllm-cmd`` before anything starts."""
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise SystemExit(f"editjudge serve: --vllm-cmd {text!r}: {exc}") from None
    if not argv:
        raise SystemExit("editjudge serve: --vllm-cmd is empty")


def main(argv: Sequence[str] | None = None) -> int:
    """``editjudge serve``: its exit status."""
    args = build_parser().parse_args(argv)
    if args.vllm_args[:1] == ["--"]:
        args.vllm_args = args.vllm_args[1:]
    check_engine_command(args.vllm_cmd)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[QuietStreamHandler(sys.stderr)],
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per health probe otherwise
    try:  # before any engine starts: a broken template would only fail once they are up
        check_protocols(Settings())
    except (TemplateError, ValueError) as exc:
        say(f"editjudge serve: cannot start: {exc}")
        return 2
    try:
        return asyncio.run(run(args))
    finally:
        settle_std_streams()


if __name__ == "__main__":
    sys.exit(main())
