"""py-spy on a running ``editjudge serve``: the engine core's and one API server's hottest frames
for a few seconds of a run (where an engine spends its host time)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.procs import Server


def _titles(root: int) -> dict[int, str]:
    """pid -> process title (vLLM names its processes ``VLLM::EngineCore`` and so on)."""
    out: dict[int, str] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                todo += [int(c) for c in task.read_text().split()]
    return out


def profile(serve: Server, work: Path, tag: str, seconds: int = 8) -> dict[str, Any]:
    """py-spy's top frames (by own samples) of the engine core and one API server, if it can."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not spy:
        return {"py_spy": "not installed"}
    titles = _titles(serve.proc.pid)
    wanted = {
        "engine_core": next((p for p, t in titles.items() if "EngineCore" in t), None),
        # one API server: the engine's main process (vLLM titles only the extra ones)
        "api_server": next((p for p, t in titles.items() if "APIServer" in t), None)
        or next((p for p, t in titles.items() if "vllm" in t and "editjudge" not in t), None),
    }
    procs = {}
    for role, pid in wanted.items():
        if pid is None:
            continue
        raw = work / f"spy-{tag}-{role}.txt"
        argv = [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--format", "raw"]
        argv += ["--nonblocking", "--output", str(raw)]
        procs[role] = (
            raw,
            subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
        )
    out: dict[str, Any] = {}
    for role, (raw, proc) in procs.items():
        _, err = proc.communicate(timeout=seconds + 60)
        out[role] = top_frames(raw) if raw.exists() else {"error": err.decode()[-500:]}
    return out


@contextlib.contextmanager
def during(
    serve: Server, work: Path, tag: str, after_s: float, on: bool
) -> Iterator[dict[str, Any]]:
    """Profile ``serve`` (:func:`profile`) ``after_s`` into the block, when ``on``: the dict it
    yields holds the frames once the block and the profile are done (empty when off)."""
    frames: dict[str, Any] = {}
    timer = threading.Timer(after_s, lambda: frames.update(profile(serve, work, tag)))
    if on:
        timer.start()
    try:
        yield frames
    finally:
        if on:
            timer.join()


def top_frames(raw: Path, n: int = 25) -> dict[str, Any]:
    """From py-spy's collapsed stacks: the share of samples per leaf frame and per function
    anywhere on the stack (inclusive)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    share = {k: round(v / total, 3) for k, v in own.most_common(n)} if total else {}
    incl = {k: round(v / total, 3) for k, v in inclusive.most_common(n)} if total else {}
    return {"samples": total, "own": share, "inclusive": incl}
