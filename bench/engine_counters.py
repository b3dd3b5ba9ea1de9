"""vLLM's own counters around a run: what each engine did (steps, tokens per step, time per
request in queue, prefill and decode, cache hit rates), from two scrapes of its ``/metrics``."""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

import httpx

SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})?\s+([-+.\deE]+|NaN)$", re.M)
COUNTERS = (
    "vllm:iteration_tokens_total_count",
    "vllm:iteration_tokens_total_sum",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:request_queue_time_seconds_sum",
    "vllm:request_prefill_time_seconds_sum",
    "vllm:request_decode_time_seconds_sum",
    "vllm:request_inference_time_seconds_sum",
    "vllm:e2e_request_latency_seconds_sum",
    "vllm:e2e_request_latency_seconds_count",
    "vllm:inter_token_latency_seconds_sum",
    "vllm:inter_token_latency_seconds_count",
    "vllm:time_to_first_token_seconds_sum",
    "vllm:time_to_first_token_seconds_count",
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
    "vllm:mm_cache_queries_total",
    "vllm:mm_cache_hits_total",
    "vllm:num_preemptions_total",
)


def scrape(url: str) -> dict[str, float]:
    """vLLM's counters of interest, summed over their label sets (several API servers)."""
    totals: dict[str, float] = {}
    with contextlib.suppress(httpx.HTTPError):
        for name, value in SAMPLE.findall(httpx.get(f"{url}/metrics", timeout=10).text):
            if name in COUNTERS and value != "NaN":
                totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def engine_view(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, Any]:
    """What the engine did between two scrapes: steps, tokens per step, time per request."""
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in COUNTERS}
    steps = d["vllm:iteration_tokens_total_count"]
    requests = d["vllm:e2e_request_latency_seconds_count"]

    def per_request(key: str) -> float | None:
        return round(1000 * d[key] / requests, 1) if requests else None

    def rate(hits: str, queries: str) -> float | None:
        return round(d[hits] / d[queries], 3) if d[queries] else None

    return {
        "requests": int(requests),
        "steps": int(steps),
        "step_ms_mean": round(1000 * seconds / steps, 2) if steps else None,
        "tokens_per_step": round(d["vllm:iteration_tokens_total_sum"] / steps, 1)
        if steps
        else None,
        "prompt_tokens_per_request": round(d["vllm:prompt_tokens_total"] / requests)
        if requests
        else None,
        "generated_tokens_per_request": round(d["vllm:generation_tokens_total"] / requests, 1)
        if requests
        else None,
        "queue_ms_per_request": per_request("vllm:request_queue_time_seconds_sum"),
        "prefill_ms_per_request": per_request("vllm:request_prefill_time_seconds_sum"),
        "decode_ms_per_request": per_request("vllm:request_decode_time_seconds_sum"),
        "e2e_ms_per_request": per_request("vllm:e2e_request_latency_seconds_sum"),
        "itl_ms_mean": round(
            1000
            * d["vllm:inter_token_latency_seconds_sum"]
            / d["vllm:inter_token_latency_seconds_count"],
            2,
        )
        if d["vllm:inter_token_latency_seconds_count"]
        else None,
        "prefix_cache_hit_rate": rate(
            "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"
        ),
        "mm_cache_hit_rate": rate("vllm:mm_cache_hits_total", "vllm:mm_cache_queries_total"),
        "preemptions": int(d["vllm:num_preemptions_total"]),
    }


class EngineCounters:
    """Scrapes every engine behind a router (its ``GET /backends``) when the block starts and
    when it ends; :attr:`views` maps each engine's URL to :func:`engine_view` of the two."""

    def __init__(self, router_url: str) -> None:
        self.router_url = router_url
        self.views: dict[str, dict[str, Any]] = {}
        self._before: dict[str, dict[str, float]] = {}
        self._t0 = 0.0

    def __enter__(self) -> EngineCounters:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
            backends = httpx.get(f"{self.router_url}/backends", timeout=5).json()
            self._before = {b["url"]: scrape(b["url"]) for b in backends}
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = time.monotonic() - self._t0
        self.views = {u: engine_view(b, scrape(u), seconds) for u, b in self._before.items()}
