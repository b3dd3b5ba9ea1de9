"""What ``editjudge serve`` starts: one :class:`Engine` per GPU, its ``vllm serve`` command line and
environment, with the placement plan (:mod:`editjudge.server.box.placement`) applied."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
from collections import deque
from dataclasses import dataclass, field

from . import defaults, placement

log = logging.getLogger("editjudge.launcher")

DEFAULT_VLLM_CMD = "vllm serve"
RECENT_LINES = 20  # an engine's last output lines, quoted when it is given up
# Polled by the router every health interval and by Prometheus every scrape: an access-log line
# each would drown what the engines say about real work. vLLM 0.16 added the flag; for an older
# one, pass `-- --disable-uvicorn-access-log` instead and it is left out.
QUIET_ENDPOINTS = "/health,/metrics"


def advice_for(line: str, argv: list[str]) -> str | None:
    """What an operator can do about an engine start failure that ``line`` of its output names,
    where one of the launcher's own engine defaults (still in the engine's ``argv``, not replaced by
    the operator's) plays a part; None for any other line."""
    if "Decrease GPU memory utilization" not in line:  # vLLM: too little free memory
        return None  # every line of every engine passes here: the cheap test first
    flag = "--gpu-memory-utilization"
    if flag in argv and argv[argv.index(flag) + 1 :][:1] == [defaults.GPU_MEMORY_UTILIZATION]:
        return (
            "the GPU has less free memory than the engine asks for: editjudge serve asks for "
            f"--gpu-memory-utilization {defaults.GPU_MEMORY_UTILIZATION} of each card (each engine "
            "owns its GPU); where something else uses the GPU, pass "
            "`-- --gpu-memory-utilization 0.9` (or less)"
        )
    return None


@dataclass
class Engine:
    """One supervised vLLM server."""

    gpu: int
    port: int
    argv: list[str]
    env: dict[str, str]
    cpus: tuple[int, ...] = ()
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    starts: int = 0  # processes started so far
    healthy: bool = False  # its latest process has answered /health
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_LINES))
    advice: str | None = None  # what to do about its latest failed start, where its output says

    def heard(self, line: str) -> None:
        """Keep one line of the engine's output: the last few, and advice it calls for."""
        self.recent.append(line)
        self.advice = self.advice or advice_for(line, self.argv)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def parse_gpus(spec: str) -> list[int]:
    """``--gpus``: ``all`` (every GPU nvidia-smi lists) or a list like ``0,1,2``."""
    if spec == "all":
        gpus = sorted(placement.detect_gpus())
        if not gpus:
            raise SystemExit("editjudge serve: --gpus all, but nvidia-smi found no GPU")
        return gpus
    try:
        gpus = [int(g) for g in spec.split(",") if g.strip()]
    except ValueError:
        raise SystemExit(
            f"editjudge serve: --gpus must be 'all' or like 0,1,2 (got {spec!r})"
        ) from None
    if not gpus or len(set(gpus)) != len(gpus):
        raise SystemExit(f"editjudge serve: --gpus lists no GPU or one twice ({spec!r})")
    return gpus


def planned_api_servers(option: str) -> int | None:
    """``--api-server-count``: auto = from the core share (None), 0 = omit the flag (vLLM: 1)."""
    return None if option == "auto" else max(1, int(option))


def engine_argv(args: argparse.Namespace, port: int, api_server_count: int) -> list[str]:
    """The ``vllm serve`` command line of the engine on ``port``; ``--`` arguments come last."""
    argv = [
        *shlex.split(args.vllm_cmd),
        "--model",
        args.model,
        "--host",
        args.engine_host,
        "--port",
        str(port),
    ]
    if api_server_count > 1 and args.api_server_count != "0":
        argv += ["--api-server-count", str(api_server_count)]
    given = {a.split("=", 1)[0] for a in args.vllm_args}
    for flag, value in defaults.engine_flags(model_max_len=defaults.model_context(args.model)):
        # The operator's own value after `--` wins, also given field by field
        # (`--structured-outputs-config.backend xgrammar`).
        if not any(g == flag or g.startswith(f"{flag}.") for g in given):
            argv += [flag, value]
    if "--enable-prompt-tokens-details" not in given:
        # Lets results report cached prompt tokens (prefix/encoder cache reuse).
        argv.append("--enable-prompt-tokens-details")
    if not given & {"--disable-access-log-for-endpoints", "--disable-uvicorn-access-log"}:
        # vLLM's access log is the operator's choice once the arguments say anything about it
        argv += ["--disable-access-log-for-endpoints", QUIET_ENDPOINTS]
    argv += args.vllm_args
    return argv


def build_engines(
    args: argparse.Namespace, gpus: list[int]
) -> tuple[list[Engine], tuple[int, ...]]:
    """Engine commands and environments, with the placement plan applied; also the router's
    cores (none when unpinned)."""
    layout = placement.machine_plan(
        gpus,
        numa=args.pin,
        router_cpus=args.router_cpus,
        api_server_count=planned_api_servers(args.api_server_count),
    )
    engines = []
    for i, spot in enumerate(layout.engines):
        port = args.engine_base_port + i
        argv = engine_argv(args, port, spot.api_server_count)
        env = (
            {**os.environ, **spot.env()}
            if args.pin
            else {**os.environ, "CUDA_VISIBLE_DEVICES": str(spot.gpu)}
        )
        engines.append(Engine(spot.gpu, port, argv, env, spot.cpus if args.pin else ()))
        if args.pin:
            log.info(
                "GPU %d: cores %s, %d API server(s), %d threads per process",
                spot.gpu,
                spot.cpuset(),
                spot.api_server_count,
                spot.threads_per_process,
            )
    return engines, layout.router_cpus if args.pin else ()
