"""A stand-in for the ``vllm serve`` executable: takes vLLM's flags, serves a FakeEngine.

Used by the launcher tests: ``--vllm-cmd "python tests/fakes/fake_vllm.py"``. It prints its pid
and arguments so tests can find and kill it. Knobs, from the environment:

- ``FAKE_VLLM_STARTUP_S``: delay readiness by that many seconds;
- ``FAKE_VLLM_LATENCY``: seconds per completion;
- ``FAKE_VLLM_REQUEST_LOG``: a JSON line per completion received and answered, to that file or,
  with ``-``, to stdout (the launcher's pipe, as vLLM's own request logs go);
- ``FAKE_VLLM_EXIT``: exit with that status instead of serving (a broken engine), on the GPUs in
  ``FAKE_VLLM_EXIT_GPUS`` (like ``1,2``) or on every GPU;
- ``FAKE_VLLM_TICK_S``: print a line that often, as vLLM logs its throughput every 10 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aiohttp import web

from editjudge.server.testing.fake_engine import FakeEngine


def request_log() -> IO[str] | None:
    target = os.environ.get("FAKE_VLLM_REQUEST_LOG")
    if not target:
        return None
    return sys.stdout if target == "-" else open(target, "a", buffering=1)


def exit_early() -> None:
    """``FAKE_VLLM_EXIT``: fail like an engine that cannot load, after a line of output
    (``FAKE_VLLM_EXIT_LINE``, or one saying it cannot load the model)."""
    code = os.environ.get("FAKE_VLLM_EXIT")
    gpus = os.environ.get("FAKE_VLLM_EXIT_GPUS")
    cuda = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if code is None or (gpus is not None and cuda not in gpus.split(",")):
        return
    line = os.environ.get("FAKE_VLLM_EXIT_LINE", "fake vllm: cannot load the model")
    print(f"{line}, exiting with {code}", flush=True)
    sys.exit(int(code))


def tick() -> None:
    interval = float(os.environ.get("FAKE_VLLM_TICK_S", "0"))

    def forever() -> None:
        while True:
            time.sleep(interval)
            print("fake vllm: tick", flush=True)

    if interval > 0:
        threading.Thread(target=forever, daemon=True).start()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    argv = sys.argv[1:]
    if argv[:1] == ["serve"]:  # `vllm serve ...`
        argv = argv[1:]
    args, extra = p.parse_known_args(argv)
    # Like vLLM's EngineCore: a child in our process group that shares our stdout and would
    # outlive us if we were killed alone.
    child = subprocess.Popen(["sleep", "3600"])
    print(
        f"fake vllm pid={os.getpid()} child={child.pid} port={args.port} "
        f"cuda={os.environ.get('CUDA_VISIBLE_DEVICES')} extra={extra}",
        flush=True,
    )
    exit_early()
    tick()
    time.sleep(float(os.environ.get("FAKE_VLLM_STARTUP_S", "0")))
    engine = FakeEngine(
        model=args.model,
        latency_s=float(os.environ.get("FAKE_VLLM_LATENCY", "0")),
        keep_requests=False,
        request_log=request_log(),
    )
    web.run_app(engine.app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
