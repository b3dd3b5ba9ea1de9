"""Host-side placement: which CPU cores and thread budgets each engine (and the router) gets.

On a GPU box every vLLM engine, its API server processes and the router bring their own thread
pools (OpenMP, MKL, torch intra-op, tokenizers). Left alone they all spread over every core, and the
engines' API servers, which do the image preprocessing, starve each other: GPUs then wait for the
host. The plan here gives each engine a disjoint, NUMA-local share of the cores, caps each
process's thread pools to that share, and keeps a few cores for the router. Pure functions; the
launcher and the compose generator apply the plan.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EnginePlacement:
    """Where one engine runs and how many threads its processes may use."""

    gpu: int
    cpus: tuple[int, ...]
    api_server_count: int
    threads_per_process: int

    def env(self) -> dict[str, str]:
        threads = str(self.threads_per_process)
        return {
            "CUDA_VISIBLE_DEVICES": str(self.gpu),
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "TOKENIZERS_PARALLELISM": "false",
        }

    def cpuset(self) -> str:
        return format_cpus(self.cpus)


@dataclass(frozen=True)
class Plan:
    engines: tuple[EnginePlacement, ...]
    router_cpus: tuple[int, ...]


def plan(
    gpus: Sequence[int],
    cpus: Sequence[int],
    *,
    numa_of_gpu: Mapping[int, int] | None = None,
    numa_cpus: Mapping[int, Sequence[int]] | None = None,
    router_cpus: int | None = None,
    api_server_count: int | None = None,
) -> Plan:
    """Split ``cpus`` between the router and one engine per GPU.

    The router keeps ``router_cpus`` cores (default: an eighth of the machine, 1 to 4), plus any
    left over from rounding. Each engine gets an equal block of the rest, taken from its GPU's NUMA
    node when that is known. (For docker compose, deploy/engine/entrypoint.sh computes the same
    blocks in sh.)
    ``api_server_count`` defaults to one API server per 4 cores of the engine's share (1 to 4):
    the API servers do the image preprocessing, the engine core needs about one core of its own.
    """
    if not gpus:
        raise ValueError("no GPUs to place engines on")
    all_cpus = sorted(set(cpus))
    reserve = router_cpus if router_cpus is not None else min(4, max(1, len(all_cpus) // 8))
    if len(all_cpus) - reserve < len(gpus):
        reserve = 0  # too few cores to set any aside: share everything
    pool = all_cpus[: len(all_cpus) - reserve]
    shares = _shares(gpus, pool, numa_of_gpu or {}, numa_cpus or {})
    taken = {c for share in shares.values() for c in share}
    router = tuple(c for c in all_cpus if c not in taken) if reserve else tuple(all_cpus)
    engines = []
    for gpu in gpus:
        share = shares[gpu]
        servers = api_server_count or max(1, min(4, len(share) // 4))
        threads = max(1, len(share) // (servers + 1))
        engines.append(EnginePlacement(gpu, tuple(share), servers, threads))
    return Plan(tuple(engines), router)


def _shares(
    gpus: Sequence[int],
    pool: list[int],
    numa_of_gpu: Mapping[int, int],
    numa_cpus: Mapping[int, Sequence[int]],
) -> dict[int, list[int]]:
    """Equal contiguous shares of ``pool``, NUMA-local where the topology is known."""
    per = max(1, len(pool) // len(gpus))
    by_node: dict[int | None, list[int]] = {}
    for gpu in gpus:
        by_node.setdefault(numa_of_gpu.get(gpu), []).append(gpu)
    shares: dict[int, list[int]] = {}
    free = list(pool)
    for node, node_gpus in sorted(by_node.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        local = [c for c in free if node is not None and c in set(numa_cpus.get(node, ()))]
        for gpu in node_gpus:
            source = local if len(local) >= per else free
            take = source[:per]
            shares[gpu] = take
            free = [c for c in free if c not in take]
            local = [c for c in local if c not in take]
    return shares


def format_cpus(cpus: Sequence[int]) -> str:
    """``[0,1,2,5]`` -> ``"0-2,5"`` (the cpuset / taskset list format)."""
    out: list[str] = []
    ordered = sorted(cpus)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def parse_cpus(text: str) -> list[int]:
    """``"0-2,5"`` -> ``[0, 1, 2, 5]``."""
    cpus: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def available_cpus() -> list[int]:
    """Cores this process may run on (respects cgroup/taskset limits)."""
    return sorted(os.sched_getaffinity(0))


def numa_topology(sys_root: Path = Path("/sys")) -> dict[int, list[int]]:
    """NUMA node -> its CPUs, from sysfs; empty when the machine does not report nodes."""
    nodes: dict[int, list[int]] = {}
    for node_dir in sorted((sys_root / "devices/system/node").glob("node[0-9]*")):
        match = re.fullmatch(r"node(\d+)", node_dir.name)
        cpulist = node_dir / "cpulist"
        if match and cpulist.exists():
            nodes[int(match.group(1))] = parse_cpus(cpulist.read_text())
    return nodes


def gpu_numa_nodes(pci_bus_ids: dict[int, str], sys_root: Path = Path("/sys")) -> dict[int, int]:
    """GPU index -> NUMA node, from each GPU's PCI bus id (as nvidia-smi prints it)."""
    out: dict[int, int] = {}
    for gpu, bus in pci_bus_ids.items():
        # nvidia-smi prints 00000000:18:00.0; sysfs uses 0000:18:00.0
        domain, _, rest = bus.lower().partition(":")
        path = sys_root / "bus/pci/devices" / f"{domain[-4:]}:{rest}" / "numa_node"
        if path.exists():
            node = int(path.read_text().strip())
            if node >= 0:
                out[gpu] = node
    return out


def detect_gpus() -> dict[int, str]:
    """GPU index -> PCI bus id, from nvidia-smi; empty if there is none."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,pci.bus_id", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    rows = [line.split(",") for line in out.strip().splitlines() if line.strip()]
    return {int(idx): bus.strip() for idx, bus in rows}


def machine_plan(
    gpus: Sequence[int],
    *,
    numa: bool = True,
    router_cpus: int | None = None,
    api_server_count: int | None = None,
) -> Plan:
    """:func:`plan` for this machine: its usable cores and, with ``numa``, its GPUs' NUMA nodes."""
    return plan(
        gpus,
        available_cpus(),
        numa_of_gpu=gpu_numa_nodes(detect_gpus()) if numa else None,
        numa_cpus=numa_topology() if numa else None,
        router_cpus=router_cpus,
        api_server_count=api_server_count,
    )
