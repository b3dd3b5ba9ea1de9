"""What the bench's phase tests share: a model folder naming a fake architecture, and the
``bench.gpu_bench`` arguments that run a phase on fake engines (``tests/fakes/fake_vllm.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.procs import free_port
from tests.processes import free_ports

ROOT = Path(__file__).resolve().parents[2]
FAKE_VLLM = f"{sys.executable} {ROOT / 'tests/fakes/fake_vllm.py'}"


def fake_model(tmp_path: Path) -> Path:
    """A model folder whose config names ``TinyVL`` (the tables name the model by it)."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"architectures": ["TinyVL"], "hidden_size": 8}')
    return model


def bench_argv(
    phases: list[str], model: Path, tmp_path: Path, *, port: int = 0, engine_base_port: int = 0
) -> list[str]:
    """``gpu_bench`` on two fake GPUs, results in ``tmp_path/out``, logs in ``tmp_path/work``;
    ports free unless given (the engines' from a block of consecutive free ones)."""
    argv = [*phases, "--model-dir", str(model), "--gpus", "2", "--out", str(tmp_path / "out")]
    argv += ["--work", str(tmp_path / "work"), "--commit", "test"]
    argv += ["--port", str(port or free_port())]
    argv += ["--engine-base-port", str(engine_base_port or free_ports(4))]
    return [*argv, "--vllm-cmd", FAKE_VLLM]
