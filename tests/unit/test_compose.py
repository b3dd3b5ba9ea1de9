"""docker-compose.yml: generated, committed, valid, one GPU per engine service."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from server import placement
from server.compose import render

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
        assert svc["environment"]["CUDA_VISIBLE_DEVICES"] == str(gpu)
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
            out = subprocess.run(
                [COMPOSE, "-f", str(path), *env_file, "config", "-q"],
                capture_output=True,
                text=True,
            )
            assert out.returncode == 0, out.stderr


def test_engine_command_expands_to_valid_vllm_flags(tmp_path: Path) -> None:
    """Run the engine's shell command with a stub `vllm` and check the flags it receives."""
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
    )
    svc = yaml.safe_load(out.stdout)["services"]["vllm-gpu1"]
    env = {k: str(v) for k, v in svc["environment"].items()}
    stub = 'vllm() { for a in "$@"; do printf "%s\\n" "$a"; done; }; '
    script = stub + svc["command"][0].replace("$$", "$").removeprefix("exec ")
    argv = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert argv[:2] == ["serve", "Qwen/Qwen3-VL-30B-A3B-Instruct"]
    flags = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert flags["--port"] == "8002"
    assert flags["--limit-mm-per-prompt"] == '{"image": 2, "video": 0}'
    assert flags["--mm-processor-kwargs"] == '{"max_pixels": 1003520}'
    assert flags["--gpu-memory-utilization"] == "0.90"
