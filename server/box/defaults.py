"""What every engine gets unless its operator says otherwise: one set of defaults for
``editjudge serve`` (bare metal), the compose file, its engine entrypoint and the Kubernetes
engines (a test keeps the last three, which are shell and YAML, in step with this module).

* ``MAX_MODEL_LEN``: two images and the rubric need 2-3k tokens; vLLM's own default is the model's
  whole context (256k for Qwen3-VL), whose KV cache does not fit beside Qwen3-VL-30B-A3B's
  weights on an 80 GB GPU, so an engine started without it never becomes healthy there.
* ``IMAGES_PER_PROMPT``: VIEScore's semantic-consistency call sends the source and the edit; no
  video. vLLM sizes its profiling and encoder budget by this.
* ``MAX_PIXELS``: the model's image processor downscales anything larger (a 12-megapixel photo
  would otherwise be 12k tokens). 1024x1024 passes unresized on Qwen3-VL's 32-pixel grid, so the
  engine's API server spends no CPU resizing the common benchmark image size.
* ``STRUCTURED_OUTPUTS_BACKEND``: every scoring call is held to its format by a regular expression
  (``structured_outputs``), and vLLM fills each constrained request's token mask on the host
  between two decode steps, where its async scheduler cannot overlap it with the GPU. Inside the
  engine llguidance (``guidance``) spent a fraction of the time xgrammar (vLLM's ``auto`` choice)
  did on them (py-spy: 5% of the engine core's samples against 40%): on one
  H100 with the dummy Qwen3-VL-30B-A3B, 4.18 items/s at 76% GPU busy against 3.15 at 58%, every
  reply parsed both ways (unconstrained: 4.87 at 81%; BENCHMARKS.md, "the reply constraint on one
  H100").
* ``GPU_MEMORY_UTILIZATION``: 0.95, not vLLM's 0.9. Each engine owns its GPU (one per card), so
  the share vLLM holds back for other users of the card went unused, and the KV cache is what
  limits a judge beside large weights: on one H100 with the dummy Qwen3-VL-30B-A3B, 76 requests
  ran at a time instead of 61 and items/s rose 1.15x, every reply parsed (BENCHMARKS.md, "the KV
  cache is the H100's limit"). Where something else shares the card, pass 0.9 back.
* vLLM's own defaults stand for the rest: async scheduling on, the multimodal processor cache
  ``lru`` (the shared-memory cache was no faster on 4xH100, see BENCHMARKS.md, run C), a KV cache
  in the model's dtype (fp8 ran 1.32x there, but changes the judge's arithmetic).
"""

from __future__ import annotations

import json
from pathlib import Path

MAX_MODEL_LEN = 16384
IMAGES_PER_PROMPT = 2
MAX_PIXELS = 1024 * 1024
GPU_MEMORY_UTILIZATION = "0.95"
STRUCTURED_OUTPUTS_BACKEND = "guidance"
MODEL = "Qwen/Qwen3-VL-30B-A3B-Instruct"


def engine_flags(
    images_per_prompt: int = IMAGES_PER_PROMPT, model_max_len: int | None = None
) -> list[tuple[str, str]]:
    """``(flag, value)`` pairs every engine gets unless its command line sets the flag.

    ``model_max_len``: the model's own context, where known (:func:`model_context`); the default
    never asks for more, which vLLM refuses (the engine would fail its every start)."""
    max_len = min(MAX_MODEL_LEN, model_max_len) if model_max_len else MAX_MODEL_LEN
    return [
        ("--max-model-len", str(max_len)),
        ("--limit-mm-per-prompt", f'{{"image": {images_per_prompt}, "video": 0}}'),
        ("--mm-processor-kwargs", f'{{"max_pixels": {MAX_PIXELS}}}'),
        ("--gpu-memory-utilization", GPU_MEMORY_UTILIZATION),
        ("--structured-outputs-config", f'{{"backend": "{STRUCTURED_OUTPUTS_BACKEND}"}}'),
    ]


def model_context(model: str) -> int | None:
    """The context length a local model folder's ``config.json`` declares (its text model's
    ``max_position_embeddings``); None for a hub id or a folder that does not say."""
    try:
        config = json.loads((Path(model) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    for section in (config.get("text_config"), config):
        value = section.get("max_position_embeddings") if isinstance(section, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return None
