"""A stand-in for the ``vllm serve`` executable: takes vLLM's flags, serves a FakeEngine.

Used by the launcher tests: ``--vllm-cmd "python tests/fakes/fake_vllm.py"``. It prints its pid
and arguments so tests can find and kill it; ``FAKE_VLLM_STARTUP_S`` delays readiness.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aiohttp import web

from editjudge.server.testing.fake_engine import FakeEngine


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
    time.sleep(float(os.environ.get("FAKE_VLLM_STARTUP_S", "0")))
    engine = FakeEngine(
        model=args.model,
        latency_s=float(os.environ.get("FAKE_VLLM_LATENCY", "0")),
        keep_requests=False,
    )
    web.run_app(engine.app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
