"""Benchmark 1: what the router costs, on this machine, against fake engines on loopback.

Side by side in one run, with the same fake engines (``editjudge fake-engine``, fixed latency)
and the same unique 2 x 512x512 JPEG requests (~270 KB): straight to the engines (client-side
least-outstanding), through editjudge ``/score`` (the one-call ``single`` protocol, and VIEScore
with its two engine calls per item), and through vllm-router. For each: max sustained requests/s
(closed loop) and latency at a fixed open-loop rate; added latency = through-router minus direct.

    bench/install_vllm_router.sh            # once: vllm-router in its own venv
    flock /tmp/editjudge-heavy.lock .venv/bin/python -m bench.router_overhead

Variants of editjudge compare levers in the same run: ``--editjudge NAME:KEY=VAL,KEY=VAL@DIR``
(environment overrides, and optionally another checkout to run the router from).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import loadgen, report
from bench.procs import Server, cpu_model, fake_engine, load_average, running
from bench.workload import TemplateSource, chat_template, score_template

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VLLM_ROUTER = Path.home() / ".cache/editjudge/vllm-router-venv/bin/vllm-router"


@dataclass
class System:
    """Something a client can send requests to; ``server`` is None for direct-to-engines."""

    name: str
    kind: str  # direct | editjudge | vllm-router | floor
    urls: tuple[str, ...]
    template_protocol: str | None = None  # /score: the protocol named in its bodies
    server: Server | None = None
    env: dict[str, str] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", type=int, default=2)
    ap.add_argument("--latency", type=float, default=0.05, help="fake engine latency, seconds")
    ap.add_argument("--rate", type=float, default=100.0, help="open-loop requests/s")
    ap.add_argument("--concurrency", type=int, default=256, help="closed-loop requests in flight")
    ap.add_argument("--duration", type=float, default=10.0, help="closed-loop window, seconds")
    ap.add_argument("--open-duration", type=float, default=20.0, help="open-loop window, seconds")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=1, help="interleaved rounds per measurement")
    ap.add_argument("--client-procs", type=int, default=2, help="load generator processes")
    ap.add_argument(
        "--editjudge",
        action="append",
        default=None,
        help="editjudge variant NAME[:KEY=VAL,...][@CHECKOUT]; repeatable (default: one, as is)",
    )
    ap.add_argument("--no-viescore", action="store_true", help="skip the two-call VIEScore run")
    ap.add_argument(
        "--floor",
        action="store_true",
        help="also bench/floor_router.py: the least a Python router on this stack spends",
    )
    ap.add_argument("--vllm-router", default=str(DEFAULT_VLLM_ROUTER), help="'' to skip")
    ap.add_argument(
        "--vllm-router-policy",
        default="round_robin",
        help="comma-separated: one vllm-router per policy (the first is the reference)",
    )
    ap.add_argument(
        "--port", type=int, default=23000, help="first port to use (below the ephemeral range)"
    )
    ap.add_argument("--out", default=str(ROOT / "bench/results"))
    ap.add_argument("--tag", default="", help="suffix of the result file names")
    return ap.parse_args(argv)


def _variant(spec: str) -> tuple[str, dict[str, str], str | None]:
    spec, _, checkout = spec.partition("@")
    name, _, pairs = spec.partition(":")
    env = dict(p.split("=", 1) for p in pairs.split(",") if p)
    return name, env, checkout or None


def start_systems(args: argparse.Namespace, engines: list[str]) -> list[System]:
    systems = [System("direct", "direct", tuple(f"{u}/v1/chat/completions" for u in engines))]
    try:
        _start_routers(args, engines, systems)
    except BaseException:  # a failed start must not leave the routers started before it running
        for s in systems:
            if s.server is not None:
                s.server.stop()
        raise
    return systems


def _start_routers(args: argparse.Namespace, engines: list[str], systems: list[System]) -> None:
    py = sys.executable
    port = args.port + 100
    for k, spec in enumerate(args.editjudge or ["editjudge"]):
        name, env, checkout = _variant(spec)
        url = f"http://127.0.0.1:{port + k}"
        env = {
            "EDITJUDGE_BACKENDS": ",".join(engines),
            "EDITJUDGE_PORT": str(port + k),
            "EDITJUDGE_HOST": "127.0.0.1",
            "EDITJUDGE_LOG_LEVEL": "warning",
            # editjudge from the checkout, the bench's protocol from here (router_app.py, run as
            # a file, imports nothing else of bench)
            "PYTHONPATH": checkout or str(ROOT),
            **env,
        }
        app = [py, str(ROOT / "bench" / "router_app.py")]
        server = Server(name, app, url, env, cwd=checkout or ROOT)
        systems.append(System(name, "editjudge", (f"{url}/score",), "single", server, env))
        if k == 0 and not args.no_viescore:
            systems.append(
                System(f"{name} (viescore)", "editjudge", (f"{url}/score",), "viescore", server)
            )
    if args.floor:
        systems.extend(_floor(engines, port + 90))
    if args.vllm_router and not Path(args.vllm_router).exists():
        print(f"!! {args.vllm_router} missing: run bench/install_vllm_router.sh; skipped")
    elif args.vllm_router:
        for k, policy in enumerate(args.vllm_router_policy.split(",")):
            vport = port + 50 + 2 * k
            argv = [args.vllm_router, "--worker-urls", *engines, "--policy", policy]
            argv += ["--host", "127.0.0.1", "--port", str(vport), "--log-level", "warning"]
            argv += ["--prometheus-port", str(vport + 1)]
            url = f"http://127.0.0.1:{vport}"
            name = "vllm-router" + (f" ({policy})" if k else "")
            server = Server(name, argv, url)
            chat = (f"{url}/v1/chat/completions",)
            systems.append(System(name, "vllm-router", chat, server=server, env={"policy": policy}))


def _floor(engines: list[str], port: int) -> list[System]:
    """``bench/floor_router.py``: the stack's own cost, on ``/score`` and passing chat through."""
    url = f"http://127.0.0.1:{port}"
    env = {"EDITJUDGE_BACKENDS": ",".join(engines), "EDITJUDGE_PORT": str(port)}
    server = Server("python floor", [sys.executable, str(ROOT / "bench/floor_router.py")], url, env)
    return [
        System("python floor (/score)", "floor", (f"{url}/score",), "single", server),
        System(
            "python floor (pass-through)", "floor", (f"{url}/v1/chat/completions",), None, server
        ),
    ]


def measure(
    system: System, args: argparse.Namespace, engines: list[Server], seed: int, rate: float
) -> report.Measurement:
    """One closed-loop (rate 0) or open-loop run against ``system``; CPU sampled in the window."""
    if system.template_protocol is not None:
        template = score_template(system.template_protocol)
        expect = b'"status":"ok"'
    else:
        template, expect = chat_template(), b'"choices"'
    duration = args.open_duration if rate else args.duration
    job = loadgen.Job(
        system.urls,
        TemplateSource(template, expect, seed),
        workers=args.client_procs,
        concurrency=args.concurrency,
        rate=rate,
        warmup_s=args.warmup,
        duration_s=duration,
    )
    watched = {"engines": engines, "router": [system.server] if system.server else []}
    cpu: dict[str, float] = {}

    def sample(start: float) -> None:
        time.sleep(max(0.0, start + args.warmup - time.monotonic()))
        before = {k: sum(s.cpu_s() for s in v) for k, v in watched.items()}
        time.sleep(max(0.0, start + args.warmup + duration - time.monotonic()))
        cpu.update({k: sum(s.cpu_s() for s in v) - before[k] for k, v in watched.items()})

    sampler: list[threading.Thread] = []

    def begin(start: float) -> None:
        sampler.append(threading.Thread(target=sample, args=(start,)))
        sampler[0].start()

    outcomes = loadgen.run(job, on_start=begin)
    sampler[0].join()
    return report.Measurement.of(outcomes, duration, cpu, rate)


def run_all(
    systems: list[System], args: argparse.Namespace, engines: list[Server]
) -> list[report.Row]:
    """Every system, closed then open loop, ``--repeat`` rounds interleaved (ABAB...).

    On a shared machine other work steals CPU at random moments; interleaving spreads that over
    all systems, and each keeps its best max-throughput round and its median-p99 latency round.
    """
    peaks: dict[str, list[report.Measurement]] = {s.name: [] for s in systems}
    fixed: dict[str, list[report.Measurement]] = {s.name: [] for s in systems}
    seed = 0
    for r in range(args.repeat):
        for s in systems:
            seed += 1
            print(f"-- round {r + 1}: {s.name}: closed loop, {args.concurrency} in flight")
            peaks[s.name].append(measure(s, args, engines, seed=seed, rate=0.0))
            print(f"   {peaks[s.name][-1].summary()}", flush=True)
        for s in systems:
            seed += 1
            print(f"-- round {r + 1}: {s.name}: open loop, {args.rate:g} req/s")
            fixed[s.name].append(measure(s, args, engines, seed=seed, rate=args.rate))
            print(f"   {fixed[s.name][-1].summary()}", flush=True)
    return [report.Row.of(s.name, s.kind, peaks[s.name], fixed[s.name], s.env) for s in systems]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    engine_urls = [f"http://127.0.0.1:{args.port + i + 1}" for i in range(args.engines)]
    engines = [fake_engine(args.port + i + 1, args.latency) for i in range(args.engines)]
    load_before, sha = load_average(), report.commit(ROOT)
    with running(engines):
        for e in engines:
            e.wait_ready()
        systems = start_systems(args, engine_urls)
        with running([s.server for s in systems if s.server]):
            for s in systems:
                if s.server is not None:
                    s.server.wait_ready("/health")
            time.sleep(1.0)
            rows = run_all(systems, args, engines)
    meta = report.meta(args, cpu_model(), load_before, load_average(), sha)
    result = report.Result(meta, rows)
    print(result.table())
    paths = result.save(Path(args.out), args.tag)
    print("wrote", *paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
