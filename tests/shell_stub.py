"""Run an engine's shell command with stub ``vllm``, ``taskset`` and ``nproc`` executables."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Launch:
    argv: list[str]  # what `vllm` received
    taskset: list[str]  # what `taskset` received (empty if not called)
    threads: str  # OMP_NUM_THREADS as vllm saw it


def run_engine_command(command: str, env: dict[str, str], nproc: int | None = None) -> Launch:
    """``command`` as compose hands it to the container's ``sh -c`` (``$$`` already unescaped)."""
    with tempfile.TemporaryDirectory() as tmp:
        bin_dir = Path(tmp)
        out = bin_dir / "out"
        scripts = {
            "vllm": f'#!/bin/sh\necho "$OMP_NUM_THREADS" > {out}.threads\n'
            f'for a in "$@"; do printf "%s\\n" "$a"; done > {out}.argv\n',
            "taskset": f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > {out}.taskset\n',
        }
        if nproc is not None:
            scripts["nproc"] = f"#!/bin/sh\necho {nproc}\n"
        for name, text in scripts.items():
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        full_env = {**env, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        subprocess.run(["/bin/sh", "-c", command], env=full_env, check=True, timeout=30)

        def lines(suffix: str) -> list[str]:
            path = Path(f"{out}.{suffix}")
            return path.read_text().splitlines() if path.exists() else []

        threads = lines("threads")
        return Launch(lines("argv"), lines("taskset"), threads[0] if threads else "")
