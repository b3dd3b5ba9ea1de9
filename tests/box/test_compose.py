"""docker-compose.yml: generated, committed, valid, one GPU per engine service."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from editjudge.server.box import defaults, placement
from editjudge.server.box.compose import ENTRYPOINT, render
from tests.shell_stub import Launch, container_argv, run_engine

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = shutil.which("docker-compose") or str(Path(sys.executable).parent / "docker-compose")


def test_committed_file_is_the_generators_output_for_six_gpus() -> None:
    assert (ROOT / "docker-compose.yml").read_text() == render(range(6))


@pytest.mark.parametrize("gpus", [[0], [0, 1, 2, 3], [2, 5, 7]])
def test_one_engine_per_gpu_with_its_own_port_and_device(gpus: list[int]) -> None:
    doc = yaml.safe_load(render(gpus))
    engines = {k: v for k, v in doc["services"].items() if k.startswith("vllm-")}
    assert list(engines) == [f"vllm-gpu{g}" for g in gpus]
    ports = set()
    for gpu, svc in zip(gpus, engines.values(), strict=True):
        # The runtime shows the container its reserved GPU as device 0: a host index set here
        # would name a GPU the container does not have (the bug this used to assert).
        assert "CUDA_VISIBLE_DEVICES" not in svc["environment"]
        device = svc["deploy"]["resources"]["reservations"]["devices"][0]
        assert device["device_ids"] == [str(gpu)] and device["capabilities"] == ["gpu"]
        assert "/health" in " ".join(svc["healthcheck"]["test"])
        assert "hf-cache:/root/.cache/huggingface" in svc["volumes"]
        assert svc["environment"]["HF_TOKEN"] == "${HF_TOKEN:-}"
        ports.add(svc["ports"][0])
    assert len(ports) == len(gpus)
    router = doc["services"]["router"]
    assert router["environment"]["EDITJUDGE_BACKENDS"].count("http://vllm-gpu") == len(gpus)
    assert "depends_on" not in router  # serves as soon as one engine is healthy


def keys_as_written(text: str) -> dict[str, frozenset[str]]:
    """Each engine service's own keys in compose file ``text``, before ``<<`` merges anything."""
    root = yaml.compose(text)
    services = next(node for key, node in root.value if key.value == "services")
    return {
        key.value: frozenset(k.value for k, _ in node.value)
        for key, node in services.value
        if key.value.startswith("vllm-")
    }


def test_the_engine_is_written_once_and_each_service_adds_only_its_own() -> None:
    """What engines share lives in `x-engine`; a service adds its index, host port and GPU."""
    text = render(range(6))
    own = frozenset({"<<", "command", "ports", "deploy"})
    assert set(keys_as_written(text).values()) == {own}
    assert text.count("x-engine: &engine") == 1 and text.count("<<: *engine") == 6
    assert text.count(f"./{ENTRYPOINT}:") == 1 and "exec vllm" not in text  # no inline program
    pinned = render([0, 1], placement.plan([0, 1], list(range(16))))
    assert set(keys_as_written(pinned).values()) == {own | {"environment", "cpuset"}}


def test_pinned_layout_writes_cpusets_and_thread_caps() -> None:
    layout = placement.plan([0, 1], list(range(16)))
    doc = yaml.safe_load(render([0, 1], layout))
    sets = [placement.parse_cpus(doc["services"][f"vllm-gpu{g}"]["cpuset"]) for g in (0, 1)]
    assert not set(sets[0]) & set(sets[1])
    assert doc["services"]["vllm-gpu0"]["environment"]["OMP_NUM_THREADS"].isdigit()
    assert "cpuset" in doc["services"]["router"]


def test_compose_config_validates_offline(tmp_path: Path) -> None:
    for gpus in ([0, 1, 2, 3, 4, 5], [0, 1, 2, 3]):
        path = tmp_path / "docker-compose.yml"
        path.write_text(render(gpus))
        (tmp_path / "Dockerfile").write_text("FROM scratch\n")
        for env_file in ([], ["--env-file", str(ROOT / ".env.example")]):
            for profiles in ([], ["--profile", "monitoring", "--profile", "tls"]):
                out = subprocess.run(
                    [COMPOSE, "-f", str(path), *env_file, *profiles, "config", "-q"],
                    capture_output=True,
                    text=True,
                )
                assert out.returncode == 0, out.stderr


def compose_config(extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [
            COMPOSE,
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--env-file",
            str(ROOT / ".env.example"),
            "config",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, **(extra_env or {})},
    )
    return dict(yaml.safe_load(out.stdout))


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as its process gets it (a bare `NAME` with no value is unset)."""
    return {k: str(v) for k, v in (service.get("environment") or {}).items() if v is not None}


def engines_as_compose_runs_them(text: str, tmp_path: Path) -> dict[str, Any]:
    """The engine services of compose file ``text``, merged and interpolated by compose itself
    (defaults from .env.example), with mounted paths resolved against this repository."""
    path = tmp_path / "docker-compose.yml"
    path.write_text(text)
    out = subprocess.run(
        [
            COMPOSE,
            "-f",
            str(path),
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(ROOT / ".env.example"),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    services: dict[str, Any] = json.loads(out.stdout)["services"]
    return {name: svc for name, svc in services.items() if name.startswith("vllm-")}


def reserved_gpus(service: dict[str, Any]) -> list[str]:
    """The host GPUs a service reserves (its NVIDIA device requests' ids)."""
    devices = service.get("deploy", {}).get("resources", {}).get("reservations", {})
    return [
        str(gpu)
        for device in devices.get("devices", [])
        if device.get("driver", "nvidia") == "nvidia" or "gpu" in device.get("capabilities", [])
        for gpu in device.get("device_ids", [])
    ]


def gpus_missing_in_container(service: dict[str, Any], launch: Launch) -> list[str]:
    """The NVIDIA container runtime's renumbering, modelled: a container sees only the GPUs its
    service reserves, numbered 0..n-1 whatever their host indices. Every GPU index the engine is
    told to use must be one of those: the service environment's CUDA_VISIBLE_DEVICES and
    NVIDIA_VISIBLE_DEVICES (Docker sets the latter from the reservation by itself, in host
    numbering, and CUDA ignores it; one written into the service only fights the reservation),
    and the CUDA_VISIBLE_DEVICES that `vllm` actually started with. Returns what is wrong."""
    inside = [str(i) for i in range(len(reserved_gpus(service)))]
    if not inside:
        return ["the container reserves no GPU"]
    told = {
        f"service environment {name}": value
        for name, value in env_of(service).items()
        if name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")
    }
    if "CUDA_VISIBLE_DEVICES" in launch.env:
        told["CUDA_VISIBLE_DEVICES that vllm got"] = launch.env["CUDA_VISIBLE_DEVICES"]
    return [
        f"{source} is {value!r}, but the container's GPUs are {inside}"
        for source, value in told.items()
        if any(index.strip() not in inside for index in value.split(","))
    ]


def engine_gpu_problems(text: str, tmp_path: Path) -> dict[str, list[str]]:
    """Start every engine of compose file ``text`` with a stub `vllm`, and check its GPUs."""
    problems = {}
    for name, svc in engines_as_compose_runs_them(text, tmp_path).items():
        launch = run_engine(container_argv(svc, ROOT), env_of(svc), nproc=64)
        assert launch.argv[:1] == ["serve"], f"{name} did not start vllm"
        problems[name] = gpus_missing_in_container(svc, launch)
    return problems


@pytest.mark.parametrize("pin", [False, True], ids=["self-placed", "pinned"])
@pytest.mark.parametrize("gpus", [1, 4, 6, 8])
def test_every_engine_uses_the_gpu_its_container_sees(gpus: int, pin: bool, tmp_path: Path) -> None:
    layout = placement.plan(list(range(gpus)), list(range(64))) if pin else None
    text = render(range(gpus), layout)
    services = engines_as_compose_runs_them(text, tmp_path)
    assert {name: reserved_gpus(svc) for name, svc in services.items()} == {
        f"vllm-gpu{g}": [str(g)] for g in range(gpus)
    }
    assert engine_gpu_problems(text, tmp_path) == {f"vllm-gpu{g}": [] for g in range(gpus)}


def reserving(gpu: str, **service: Any) -> dict[str, Any]:
    devices = [{"driver": "nvidia", "device_ids": [gpu], "capabilities": ["gpu"]}]
    return {**service, "deploy": {"resources": {"reservations": {"devices": devices}}}}


@pytest.mark.parametrize(
    ("service", "wrong"),
    [
        # the old file's shape: reserve host GPU 3 and tell the process to use GPU 3
        (
            reserving("3", environment={"CUDA_VISIBLE_DEVICES": "3"}),
            ["service environment CUDA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES that vllm got"],
        ),
        # a start command that sets the host index itself
        (
            reserving("3", command=["export CUDA_VISIBLE_DEVICES=3; exec vllm serve m"]),
            ["CUDA_VISIBLE_DEVICES that vllm got"],
        ),
        (
            reserving("3", environment={"NVIDIA_VISIBLE_DEVICES": "3"}),
            ["service environment NVIDIA_VISIBLE_DEVICES"],
        ),
        # an empty list hides every GPU
        (
            reserving("3", environment={"CUDA_VISIBLE_DEVICES": ""}),
            ["service environment CUDA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES that vllm got"],
        ),
        ({"command": ["exec vllm serve m"]}, ["the container reserves no GPU"]),
    ],
    ids=["old-file", "command-sets-it", "nvidia-visible-devices", "empty", "no-reservation"],
)
def test_the_gpu_model_rejects_an_index_the_container_lacks(
    service: dict[str, Any], wrong: list[str]
) -> None:
    service = {"entrypoint": ["/bin/sh", "-c"], "command": ["exec vllm serve m"], **service}
    launch = run_engine(container_argv(service, ROOT), env_of(service))
    problems = gpus_missing_in_container(service, launch)
    assert len(problems) == len(wrong)
    assert all(p.startswith(w) for p, w in zip(problems, wrong, strict=True))


def test_the_gpu_model_accepts_device_0_for_any_reserved_gpu() -> None:
    service = reserving(
        "5",
        environment={"CUDA_VISIBLE_DEVICES": "0"},
        entrypoint=["/bin/sh", "-c"],
        command=["exec vllm serve m"],
    )
    launch = run_engine(container_argv(service, ROOT), env_of(service))
    assert launch.env["CUDA_VISIBLE_DEVICES"] == "0"
    assert gpus_missing_in_container(service, launch) == []


def test_engine_command_expands_to_valid_vllm_flags(tmp_path: Path) -> None:
    """Run the engine's shell command with a stub `vllm` and check the flags it receives."""
    svc = compose_config()["services"]["vllm-gpu1"]
    argv = run_engine(container_argv(svc, ROOT), env_of(svc), nproc=64).argv
    assert argv[:2] == ["serve", "Qwen/Qwen3-VL-30B-A3B-Instruct"]
    flags = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert flags["--port"] == "8000"  # inside its container; published on the host as 8002
    assert svc["ports"][0]["published"] == "8002" and svc["ports"][0]["target"] == 8000
    # the same defaults as `editjudge serve` (server/box/defaults.py)
    for flag, value in defaults.engine_flags():
        assert flags[flag] == value, flag
    assert flags["--gpu-memory-utilization"] == defaults.GPU_MEMORY_UTILIZATION
    assert "--mm-processor-cache-type" not in flags
    # the health check and Prometheus poll these: the engine does not log each time
    at = argv.index("--disable-access-log-for-endpoints")
    assert argv[at + 1] == "/health,/metrics"
    # VLLM_EXTRA_ARGS comes after the script's flags, so the same flag there wins
    env = {**env_of(svc), "VLLM_EXTRA_ARGS": "--disable-access-log-for-endpoints /metrics"}
    argv = run_engine(container_argv(svc, ROOT), env, nproc=64).argv
    assert argv[-2:] == ["--disable-access-log-for-endpoints", "/metrics"]


@pytest.mark.parametrize(("gpus", "cores"), [(4, 64), (6, 64), (8, 128), (2, 32)])
def test_engine_entrypoint_places_like_the_launcher(gpus: int, cores: int, tmp_path: Path) -> None:
    """Each compose engine pins itself to the same cores, API servers and threads as
    `editjudge serve` would give it on a machine of that size."""
    services = engines_as_compose_runs_them(render(range(gpus)), tmp_path)
    layout = placement.plan(list(range(gpus)), list(range(cores)))
    for i in range(gpus):
        svc = services[f"vllm-gpu{i}"]
        env = {**env_of(svc), "API_SERVER_COUNT": "auto"}
        launch = run_engine(container_argv(svc, ROOT), env, nproc=cores)
        spot = layout.engines[i]
        assert launch.taskset[:2] == ["-pc", spot.cpuset()]
        flags = dict(zip(launch.argv[2::2], launch.argv[3::2], strict=False))
        assert flags["--api-server-count"] == str(spot.api_server_count)
        assert launch.threads == str(spot.threads_per_process)


def test_pinned_file_does_not_pin_twice() -> None:
    layout = placement.plan([0, 1], list(range(16)))
    svc = yaml.safe_load(render([0, 1], layout))["services"]["vllm-gpu1"]
    assert svc["environment"]["SELF_PIN"] == "0" and svc["cpuset"]


def compose_services(*profiles: str) -> dict[str, Any]:
    flags = [arg for p in profiles for arg in ("--profile", p)]
    out = subprocess.run(
        [COMPOSE, "-f", str(ROOT / "docker-compose.yml"), *flags, "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    services: dict[str, Any] = json.loads(out.stdout)["services"]
    return services


def test_profiles_add_monitoring_and_tls_only_when_asked() -> None:
    plain = set(compose_services())
    assert plain == {f"vllm-gpu{g}" for g in range(6)} | {"router"}
    assert set(compose_services("monitoring")) - plain == {"prometheus", "grafana"}
    assert set(compose_services("tls")) - plain == {"caddy"}


def test_every_image_is_pinned_and_every_mounted_file_exists() -> None:
    doc = yaml.safe_load(render(range(2)))
    for name, svc in doc["services"].items():
        if "build" in svc:
            continue
        image = svc["image"].removeprefix("${VLLM_IMAGE:-").rstrip("}")
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: image {svc['image']} is not pinned"
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_prometheus_scrapes_the_router_and_every_engine() -> None:
    doc = yaml.safe_load(render([3, 7]))
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    router_port = doc["services"]["router"]["ports"][0].rsplit(":", 1)[1]
    assert jobs["editjudge"]["static_configs"][0]["targets"] == [f"router:{router_port}"]
    # the engines' targets: a compose config mounted where the file_sd glob looks
    mount = doc["services"]["prometheus"]["configs"][0]
    pattern = jobs["vllm"]["file_sd_configs"][0]["files"][0]
    assert Path(mount["target"]).match(pattern)
    groups = json.loads(doc["configs"][mount["source"]]["content"])
    targets = [t for g in groups for t in g["targets"]]
    expected = []
    for name in ("vllm-gpu3", "vllm-gpu7"):
        port = doc["services"][name]["ports"][0].rsplit(":", 1)[1]
        expected.append(f"{name}:{port}")
    assert targets == expected


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    doc = yaml.safe_load(render(range(1)))
    grafana = doc["services"]["grafana"]
    prov = ROOT / "deploy/grafana/provisioning"
    ds = yaml.safe_load((prov / "datasources/prometheus.yml").read_text())["datasources"][0]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    assert "127.0.0.1:${PROMETHEUS_PORT:-9090}:9090" in doc["services"]["prometheus"]["ports"]
    provider = yaml.safe_load((prov / "dashboards/editjudge.yml").read_text())["providers"][0]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/editjudge.json"
    assert (ROOT / "deploy/grafana/dashboards/editjudge.json").exists()


def test_router_gets_every_router_setting_and_no_other_secret() -> None:
    from editjudge.server.config import Settings

    env = yaml.safe_load(render([0, 1]))["services"]["router"]["environment"]
    assert "env_file" not in yaml.safe_load(render([0, 1]))["services"]["router"]
    assert not any(k.startswith(("HF_", "GRAFANA")) for k in env)
    for name in Settings.model_fields:
        assert f"EDITJUDGE_{name.upper()}" in env or name == "host"  # host: the image's 0.0.0.0
    assert env["EDITJUDGE_API_KEYS"] == "${EDITJUDGE_API_KEYS:-}"
