"""The path editjudge replaces: transformers ``generate`` on one GPU, batch 2, same prompts.

Builds the VIEScore SC and PQ prompts of the benchmark workload (two 512x512 JPEGs per SC call) and
generates a fixed number of tokens per call, as the vLLM runs do on average.
usage: python -m bench.hf_baseline MODEL_DIR N_BATCHES [--new-tokens T]
"""

from __future__ import annotations

import argparse
import io
import json
import time

import torch
import transformers
from PIL import Image

from bench.workload import items
from editjudge.server.images import ImageLimits, prepare_image
from editjudge.server.protocols import Call, Item, VIEScore

LIMITS = ImageLimits(10**8, 10**8, frozenset({"JPEG"}))


def chat(
    processor: object, call: Call, images: dict[str, Image.Image]
) -> tuple[str, list[Image.Image]]:
    content, pics = [], []
    for part in call.content:
        if part["type"] == "image_url":
            content.append({"type": "image"})
            pics.append(images[part["image_url"]["url"]])
        else:
            content.append({"type": "text", "text": part["text"]})
    text = processor.apply_chat_template(  # type: ignore[attr-defined]
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )
    return text, pics


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("batches", type=int)
    p.add_argument("--new-tokens", type=int, default=20)
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    processor = transformers.AutoProcessor.from_pretrained(args.model_dir)
    config = transformers.AutoConfig.from_pretrained(args.model_dir)
    t = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.Qwen2_5_VLForConditionalGeneration._from_config(
            config, dtype=torch.bfloat16
        ).eval()
    init_s = time.perf_counter() - t
    batch = []
    for w in items(0, 2):
        edit, src = prepare_image(w.edit, LIMITS), prepare_image(w.source, LIMITS)
        pics = {
            edit.data_url(): Image.open(io.BytesIO(w.edit)).convert("RGB"),
            src.data_url(): Image.open(io.BytesIO(w.source)).convert("RGB"),
        }
        batch.append((VIEScore(0).calls(Item(w.instruction, edit, src)), pics))
    inputs = []
    for k in range(2):  # SC calls of both items, then PQ calls of both items
        texts, pics = zip(*(chat(processor, calls[k], imgs) for calls, imgs in batch), strict=False)
        flat = [im for group in pics for im in group]
        inputs.append(
            processor(text=list(texts), images=flat, return_tensors="pt", padding=True).to(device)
        )

    def run() -> None:
        with torch.no_grad():
            for inp in inputs:
                model.generate(
                    **inp,
                    max_new_tokens=args.new_tokens,
                    min_new_tokens=args.new_tokens,
                    do_sample=False,
                )

    run()
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(args.batches):
        run()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    print(
        json.dumps(
            {
                "hf_batch": 2,
                "batches": args.batches,
                "seconds": round(dt, 2),
                "items_per_s": round(2 * args.batches / dt, 3),
                "device": device,
                "new_tokens": args.new_tokens,
                "prompt_tokens_sc": int(inputs[0]["input_ids"].shape[1]),
                "model_init_s": round(init_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
