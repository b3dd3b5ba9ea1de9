from __future__ import annotations

from pathlib import Path

import pytest

from editjudge.server.box.placement import (
    format_cpus,
    gpu_numa_nodes,
    numa_topology,
    parse_cpus,
    plan,
)


def test_cpu_list_round_trip() -> None:
    assert format_cpus([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert parse_cpus("0-2,5,7-8") == [0, 1, 2, 5, 7, 8]
    assert parse_cpus(format_cpus(range(64))) == list(range(64))


def test_engines_get_disjoint_equal_shares_and_router_its_own() -> None:
    p = plan([0, 1, 2, 3], list(range(64)))
    shares = [set(e.cpus) for e in p.engines]
    assert all(len(s) == 15 for s in shares)
    assert not set.intersection(*shares) and all(not (s & set(p.router_cpus)) for s in shares)
    assert len(p.router_cpus) == 4
    assert [e.api_server_count for e in p.engines] == [3, 3, 3, 3]
    assert all(e.threads_per_process == 3 for e in p.engines)
    env = p.engines[2].env()
    assert env["CUDA_VISIBLE_DEVICES"] == "2" and env["OMP_NUM_THREADS"] == "3"


def test_numa_local_shares() -> None:
    numa = {0: list(range(0, 16)), 1: list(range(16, 32))}
    p = plan(
        [0, 1, 2, 3],
        list(range(32)),
        numa_of_gpu={0: 1, 1: 1, 2: 0, 3: 0},
        numa_cpus=numa,
        router_cpus=0,
    )
    by_gpu = {e.gpu: set(e.cpus) for e in p.engines}
    assert by_gpu[0] <= set(numa[1]) and by_gpu[1] <= set(numa[1])
    assert by_gpu[2] <= set(numa[0]) and by_gpu[3] <= set(numa[0])


def test_tiny_machine_shares_everything() -> None:
    p = plan([0, 1], [0, 1])
    assert p.router_cpus == (0, 1)
    assert [e.cpus for e in p.engines] == [(0,), (1,)]
    assert all(e.api_server_count == 1 and e.threads_per_process == 1 for e in p.engines)


def test_overrides_and_errors() -> None:
    p = plan([0], list(range(16)), router_cpus=2, api_server_count=2)
    assert len(p.router_cpus) == 2 and p.engines[0].api_server_count == 2
    assert len(p.engines[0].cpus) == 14
    with pytest.raises(ValueError):
        plan([], [0, 1])


def test_topology_from_sysfs(tmp_path: Path) -> None:
    for node, cpus in ((0, "0-3"), (1, "4-7")):
        d = tmp_path / f"devices/system/node/node{node}"
        d.mkdir(parents=True)
        (d / "cpulist").write_text(cpus + "\n")
    assert numa_topology(tmp_path) == {0: [0, 1, 2, 3], 1: [4, 5, 6, 7]}
    dev = tmp_path / "bus/pci/devices/0000:18:00.0"
    dev.mkdir(parents=True)
    (dev / "numa_node").write_text("1\n")
    assert gpu_numa_nodes({0: "00000000:18:00.0", 1: "00000000:99:00.0"}, tmp_path) == {0: 1}


def test_launcher_sizes_threads_for_the_api_servers_vllm_will_run() -> None:
    from editjudge.server.box.engines import planned_api_servers

    assert planned_api_servers("auto") is None
    assert planned_api_servers("0") == 1  # flag omitted: vLLM runs one API server
    assert planned_api_servers("3") == 3
    assert (
        plan([0], list(range(17)), router_cpus=1, api_server_count=1).engines[0].threads_per_process
        == 8
    )
