"""GPU scaling benchmark: one engine per GPU direct vs through editjudge, vs vLLM's own DP.

Runs on a lent GPU box in phases (each fits one 10-minute device call) and writes one JSON file per
phase to ``--out``; ``bench/report.py`` turns them into the tables of BENCHMARKS.md. Every number in
one phase comes from the same lease, the same engines and the same workload (``bench/workload.py``:
VIEScore calls, groups of 8 edits sharing a 512x512 source).

Phases:
  scaling     editjudge serve on N GPUs (pinned defaults); direct N=1,2,..; router N=1,2,..;
              >= 500 items through the launcher's router (per-engine share); GPU busy time and
              engine decode-step time during each run.
  placement   the same at N=all with the pre-placement settings (--no-pin, one API server).
  dp          vllm serve --data-parallel-size N, direct.
  hf          transformers generate, batch 2, one GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SERVED = "judge"
ENGINE_ARGS = [
    "--served-model-name",
    SERVED,
    "--load-format",
    "dummy",
    "--max-model-len",
    "4096",
    "--limit-mm-per-prompt",
    '{"image": 2, "video": 0}',
    "--gpu-memory-utilization",
    "0.85",
    "--structured-outputs-config",
    '{"backend": "xgrammar", "disable_any_whitespace": true}',
]
STEP = re.compile(
    r"Avg prompt throughput: ([\d.]+) tokens/s, Avg generation throughput: "
    r"([\d.]+) tokens/s, Running: (\d+) reqs"
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def card() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.splitlines()
        if out:
            return f"{len(out)}x {out[0].strip()}"
    return "no GPU (CPU run)"


def commit() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                cwd=ROOT,
                timeout=10,
            ).stdout.strip()
            or "unknown"
        )
    return os.environ.get("EDITJUDGE_COMMIT", "unknown")


def wait_healthy(urls: Sequence[str], timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    end = time.monotonic() + timeout_s
    pending = list(urls)
    while pending and time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        for url in list(pending):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    pending.remove(url)
        time.sleep(1)
    if pending:
        raise TimeoutError(f"not healthy after {timeout_s:.0f}s: {pending}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, grace_s: float = 60) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def spawn(
    cmd: list[str], logfile: Path, env: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen[bytes]:
    with open(logfile, "ab") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            **popen,
        )


class GpuSampler:
    """Samples utilization.gpu (percent of time a kernel ran) every 500 ms."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> GpuSampler:
        with contextlib.suppress(OSError):
            self.proc = spawn(
                [
                    "nvidia-smi",
                    "--query-gpu=index,utilization.gpu",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "500",
                ],
                self.path,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop(self.proc, signal.SIGTERM, 5)

    def busy(self) -> dict[str, float]:
        samples: dict[str, list[float]] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                parts = [p.strip() for p in line.split(",")]
                if len(parts) == 2 and parts[1].isdigit():
                    samples.setdefault(parts[0], []).append(float(parts[1]))
        # Drop the ramp at both ends of the window.
        return {
            g: round(sum(v[2:-2]) / max(1, len(v[2:-2])), 1)
            for g, v in sorted(samples.items())
            if len(v) > 4
        }


def step_stats(text: str) -> dict[str, float | None]:
    """Mean decode-step time from vLLM's periodic stats lines (running reqs / gen tokens/s)."""
    steps, running = [], []
    for m in STEP.finditer(text):
        gen, run = float(m.group(2)), int(m.group(3))
        if gen > 0 and run > 0:
            steps.append(run / gen)
            running.append(run)
    if not steps:
        return {"decode_step_ms": None, "running_mean": None}
    return {
        "decode_step_ms": round(1000 * sum(steps) / len(steps), 1),
        "running_mean": round(sum(running) / len(running), 1),
    }


@contextlib.contextmanager
def watch(log_path: Path | None, gpu_log: Path) -> Iterator[dict[str, Any]]:
    """Collect GPU busy time and engine step stats for the duration of the block."""
    start = log_path.stat().st_size if log_path and log_path.exists() else 0
    stats: dict[str, Any] = {}
    gpu_log.unlink(missing_ok=True)
    with GpuSampler(gpu_log) as sampler:
        yield stats
    stats["gpu_busy_pct"] = sampler.busy()
    if log_path and log_path.exists():
        with open(log_path, "rb") as f:
            f.seek(start)
            stats.update(step_stats(f.read().decode(errors="replace")))


def loadgen(
    mode: str,
    n: int,
    conc: int,
    urls: Sequence[str],
    args: argparse.Namespace,
    offset: int,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    cmd = [
        PY,
        "-m",
        "bench.loadgen",
        mode,
        str(n),
        str(conc),
        str(args.procs),
        *urls,
        "--model",
        SERVED,
        "--offset",
        str(offset),
        *extra,
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT, timeout=900, **pinned(args.loadgen_cpu_list)
    )
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(
    name: str,
    mode: str,
    urls: Sequence[str],
    n: int,
    conc: int,
    args: argparse.Namespace,
    engine_log: Path | None,
    offset: int,
) -> dict[str, Any]:
    # A short warm-up at the same concurrency so compile/caches stay out of the numbers.
    loadgen(mode, max(conc, 16), conc, urls, args, offset=offset + 10_000_000)
    with watch(engine_log, args.out / f"gpu-{name}.csv") as stats:
        result = loadgen(mode, n, conc, urls, args, offset)
    result.update(stats, name=name)
    with open(args.out / "runs.jsonl", "a") as f:  # survives a call cut off mid-phase
        f.write(json.dumps(result) + "\n")
    log(
        f"{name}: {result['items_per_s']} items/s p50 {result['p50_s']}s "
        f"busy {result.get('gpu_busy_pct')} step {result.get('decode_step_ms')} ms "
        f"errors {result['errors']}"
    )
    return result


class Box:
    """Ports, cores and paths of one benchmark machine."""

    def __init__(self, args: argparse.Namespace) -> None:
        cpus = sorted(os.sched_getaffinity(0))
        k = args.loadgen_cpus if args.loadgen_cpus is not None else (12 if len(cpus) >= 32 else 0)
        self.loadgen_cpus = cpus[len(cpus) - k :] if k else []
        self.serve_cpus = cpus[: len(cpus) - k] if k else cpus
        self.router_port, self.engine_base = 8000, 8101

    def engines(self, n: int) -> list[str]:
        return [f"http://127.0.0.1:{self.engine_base + i}" for i in range(n)]


def pinned(cpus: Sequence[int]) -> dict[str, Any]:
    if not cpus:
        return {}
    chosen = set(cpus)

    def pin() -> None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, chosen)

    return {"preexec_fn": pin}


def start_launcher(
    args: argparse.Namespace, box: Box, tag: str, flags: Sequence[str]
) -> tuple[subprocess.Popen[bytes], Path]:
    logfile = args.out / f"launcher-{tag}.log"
    gpus = ",".join(str(i) for i in range(args.gpus))
    cmd = [
        PY,
        "-m",
        "editjudge.server.box.launcher",
        "--gpus",
        gpus,
        "--model",
        str(args.model_dir),
        "--port",
        str(box.router_port),
        "--engine-base-port",
        str(box.engine_base),
        "--vllm-cmd",
        args.vllm_cmd,
        *flags,
        "--",
        *ENGINE_ARGS,
        *args.engine_args,
    ]
    env = {
        "EDITJUDGE_HEALTH_INTERVAL_S": "1",
        "EDITJUDGE_REASONING": "false",
        "EDITJUDGE_MAX_IN_FLIGHT_PER_BACKEND": "1024",
        "PYTHONUNBUFFERED": "1",
    }
    proc = spawn(cmd, logfile, env, **pinned(box.serve_cpus))
    t = time.monotonic()
    wait_healthy(
        [*box.engines(args.gpus), f"http://127.0.0.1:{box.router_port}"], args.start_timeout, proc
    )
    log(f"launcher {tag}: {args.gpus} engines + router healthy in {time.monotonic() - t:.0f}s")
    return proc, logfile


@contextlib.contextmanager
def extra_router(
    backends: Sequence[str], port: int, args: argparse.Namespace, policy: str = "least_outstanding"
) -> Iterator[str]:
    env = {
        "EDITJUDGE_BACKENDS": ",".join(backends),
        "EDITJUDGE_PORT": str(port),
        "EDITJUDGE_HOST": "127.0.0.1",
        "EDITJUDGE_REASONING": "false",
        "EDITJUDGE_ROUTING_POLICY": policy,
        "EDITJUDGE_MAX_IN_FLIGHT_PER_BACKEND": "1024",
    }
    proc = spawn([PY, "-m", "editjudge.server"], args.out / f"router-{port}.log", env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy([url], 60, proc)
        wait_ready(url)
        yield url
    finally:
        stop(proc, signal.SIGTERM, 30)


def wait_ready(url: str, timeout_s: float = 60) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready")


def sizes(total: int) -> list[int]:
    return sorted({1, *(n for n in (2, 4, 8) if n < total), total})


def phase_scaling(args: argparse.Namespace, box: Box) -> dict[str, Any]:
    proc, elog = start_launcher(args, box, "scaling", [])
    runs, offset = [], 0
    try:
        for n in sizes(args.gpus):
            offset += 100_000
            runs.append(
                measure(
                    f"direct-{n}",
                    "direct",
                    box.engines(n),
                    args.items * n,
                    args.conc * n,
                    args,
                    elog,
                    offset,
                )
            )
        for n in sizes(args.gpus):
            offset += 100_000
            # At N = all, the launcher's own router (the issue-3 proof: >= 500 items); else one
            # started in front of the first n engines.
            router = (
                contextlib.nullcontext(f"http://127.0.0.1:{box.router_port}")
                if n == args.gpus
                else extra_router(box.engines(n), box.router_port + n, args)
            )
            items = max(500, args.items * n) if n == args.gpus else args.items * n
            with router as url:
                runs.append(
                    measure(
                        f"router-{n}", "router", [url], items, args.conc * n, args, elog, offset
                    )
                )
        runs.extend(groups(args, box))
    finally:
        stop(proc)
    return {"phase": "scaling", "runs": runs}


def groups(args: argparse.Namespace, box: Box) -> list[dict[str, Any]]:
    """Group workload through least-outstanding vs affinity routing (same engines)."""
    script = ROOT / "bench" / "group_affinity.py"
    if not script.exists() or args.skip_groups:
        return []
    out = args.out / "group-affinity.json"
    cmd = [
        PY,
        str(script),
        "--engines",
        *box.engines(args.gpus),
        "--out",
        str(out),
        "--groups",
        str(args.group_count),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    log(f"group_affinity rc={done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return [{"name": "group-affinity", "rc": done.returncode, "stdout": done.stdout[-4000:]}]


def phase_placement(args: argparse.Namespace, box: Box) -> dict[str, Any]:
    """The settings before host-side placement: no pinning, no thread caps, one API server."""
    proc, elog = start_launcher(args, box, "unpinned", ["--no-pin", "--api-server-count", "0"])
    runs = []
    try:
        n = args.gpus
        runs.append(
            measure(
                f"direct-{n}-unpinned",
                "direct",
                box.engines(n),
                args.items * n,
                args.conc * n,
                args,
                elog,
                5_000_000,
            )
        )
        url = f"http://127.0.0.1:{box.router_port}"
        runs.append(
            measure(
                f"router-{n}-unpinned",
                "router",
                [url],
                args.items * n,
                args.conc * n,
                args,
                elog,
                5_100_000,
            )
        )
    finally:
        stop(proc)
    return {"phase": "placement", "runs": runs}


def phase_dp(args: argparse.Namespace, box: Box) -> dict[str, Any]:
    n, runs = args.gpus, []
    for tag, extra in (("dp", []), ("dp-api4", ["--api-server-count", str(n)])):
        logfile = args.out / f"{tag}.log"
        cmd = [
            *shlex.split(args.vllm_cmd),
            "--model",
            str(args.model_dir),
            "--port",
            str(box.engine_base),
            "--enable-prompt-tokens-details",
            "--data-parallel-size",
            str(n),
            *ENGINE_ARGS,
            *args.engine_args,
            *extra,
        ]
        proc = spawn(cmd, logfile, {"CUDA_VISIBLE_DEVICES": ",".join(map(str, range(n)))})
        try:
            t = time.monotonic()
            wait_healthy(box.engines(1), args.start_timeout, proc)
            log(f"{tag}: healthy in {time.monotonic() - t:.0f}s")
            runs.append(
                measure(
                    f"{tag}-{n}",
                    "direct",
                    box.engines(1),
                    args.items * n,
                    args.conc * n,
                    args,
                    logfile,
                    6_000_000 + len(runs) * 100_000,
                )
            )
        finally:
            stop(proc, signal.SIGTERM, 60)
        if args.dp_once:
            break
    return {"phase": "dp", "runs": runs}


def phase_hf(args: argparse.Namespace, box: Box) -> dict[str, Any]:
    cmd = [PY, "-m", "bench.hf_baseline", str(args.model_dir), str(args.hf_batches)]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=540,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "0"},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    log(f"hf: {result}")
    return {"phase": "hf", "runs": [result]}


PHASES = {"scaling": phase_scaling, "placement": phase_placement, "dp": phase_dp, "hf": phase_hf}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("phases", nargs="+", choices=sorted(PHASES))
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--gpus", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--items", type=int, default=300, help="items per engine per run")
    p.add_argument("--conc", type=int, default=64, help="items in flight per engine")
    p.add_argument("--procs", type=int, default=8, help="load generator processes")
    p.add_argument("--loadgen-cpus", type=int, default=None)
    p.add_argument("--vllm-cmd", default="vllm serve")
    p.add_argument("--engine-args", nargs=argparse.REMAINDER, default=[])
    p.add_argument("--start-timeout", type=float, default=420)
    p.add_argument("--hf-batches", type=int, default=20)
    p.add_argument("--group-count", type=int, default=48)
    p.add_argument("--skip-groups", action="store_true")
    p.add_argument("--dp-once", action="store_true", help="skip the --api-server-count DP run")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    box = Box(args)
    args.loadgen_cpu_list = box.loadgen_cpus
    meta = {
        "card": card(),
        "commit": commit(),
        "cpus": len(os.sched_getaffinity(0)),
        "loadgen_cpus": len(box.loadgen_cpus),
        "gpus": args.gpus,
        "items_per_engine": args.items,
        "conc_per_engine": args.conc,
        "engine_args": ENGINE_ARGS + args.engine_args,
    }
    log(f"bench on {meta['card']}, commit {meta['commit']}, {meta['cpus']} cpus")
    for name in args.phases:
        t = time.monotonic()
        try:
            result = PHASES[name](args, box)
        except Exception as exc:
            log(f"phase {name} failed: {exc!r}")
            result = {"phase": name, "error": repr(exc)}
        result.update(meta, seconds=round(time.monotonic() - t, 1))
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
