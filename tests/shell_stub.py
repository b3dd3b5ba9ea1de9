"""Run an engine's start command with stub ``vllm``, ``taskset`` and ``nproc`` executables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Launch:
    argv: list[str]  # what `vllm` received
    taskset: list[str]  # what `taskset` received (empty if not called)
    threads: str  # OMP_NUM_THREADS as vllm saw it
    env: dict[str, str]  # the whole environment vllm saw (CUDA_VISIBLE_DEVICES, ...)


def run_engine_command(command: str, env: dict[str, str], nproc: int | None = None) -> Launch:
    """``command`` as compose hands it to the container's ``sh -c`` (``$$`` already unescaped)."""
    return run_engine(["/bin/sh", "-c", command], env, nproc)


def run_engine(argv: Sequence[str], env: Mapping[str, str], nproc: int | None = None) -> Launch:
    """Run ``argv`` (a container's entrypoint + command, host paths) with only ``env`` set."""
    with tempfile.TemporaryDirectory() as tmp:
        bin_dir = Path(tmp)
        out = bin_dir / "out"
        # `vllm` is Python so that it can write the environment it got exactly, as JSON.
        vllm = (
            f"#!{sys.executable}\nimport json, os, sys\n"
            "seen = {'argv': sys.argv[1:], 'env': dict(os.environ)}\n"
            f"with open({str(out)!r}, 'w') as f:\n    json.dump(seen, f)\n"
        )
        scripts = {
            "vllm": vllm,
            "taskset": f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > {out}.taskset\n',
        }
        if nproc is not None:
            scripts["nproc"] = f"#!/bin/sh\necho {nproc}\n"
        for name, text in scripts.items():
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        full_env = {**env, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        subprocess.run(list(argv), env=full_env, check=True, timeout=30)

        taskset = Path(f"{out}.taskset")
        seen: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
        vllm_env: dict[str, str] = seen.get("env", {})
        vllm_env.pop("PATH", None)  # the stubs' PATH, not the engine's
        return Launch(
            argv=seen.get("argv", []),
            taskset=taskset.read_text().splitlines() if taskset.exists() else [],
            threads=vllm_env.get("OMP_NUM_THREADS", ""),
            env=vllm_env,
        )


def container_argv(service: Mapping[str, Any], root: Path) -> list[str]:
    """What a compose service runs (entrypoint + command), with its bind-mounted files mapped
    back to their host paths under ``root`` and compose's ``$$`` escapes undone."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):  # short syntax, as written in the file: SOURCE:TARGET[:MODE]
            source, target = volume.split(":")[:2]
        else:  # as `docker-compose config` prints it
            source, target = volume["source"], volume["target"]
        if source.startswith(("./", "/")):
            mounts[target] = str((root / source).resolve())
    argv = [*service.get("entrypoint", []), *service.get("command", [])]
    return [mounts.get(arg, arg.replace("$$", "$")) for arg in argv]
