"""The timing half of :mod:`bench.grammar_masks`, run by a Python that has vLLM's xgrammar: reads
``{name: regex}`` on stdin, prints one JSON line per spelling. Imports nothing from editjudge."""

from __future__ import annotations

import json
import random
import string
import sys
import time
from typing import Any

import torch  # type: ignore[import-not-found,unused-ignore]
import xgrammar as xgr  # type: ignore[import-not-found,unused-ignore]


def vocabulary(size: int = 151_000) -> list[str]:
    """Bytes, then word-like pieces: with a leading space, capitalised, with punctuation."""
    rnd = random.Random(0)
    vocab = [bytes([b]).decode("latin-1") for b in range(256)]
    seen = set(vocab)
    while len(vocab) < size:
        word = "".join(rnd.choice(string.ascii_lowercase) for _ in range(rnd.choice([2, 3, 5, 8])))
        r = rnd.random()
        if r < 0.45:
            word = " " + word
        elif r < 0.55:
            word = word.capitalize()
        elif r < 0.65:
            word += rnd.choice('.,":;')
        if word not in seen:
            seen.add(word)
            vocab.append(word)
    return [*vocab, "<|im_end|>"]


def time_spelling(grammar: Any, info: Any, vocab: list[str]) -> dict[str, Any]:
    """Replies drawn like a random-weight model's, at least 300 steps and 3 replies."""
    eos = len(vocab) - 1
    fill = accept = 0.0
    steps, chars = 0, []
    torch.manual_seed(0)
    while steps < 300 or len(chars) < 3:
        matcher, mask, text = xgr.GrammarMatcher(grammar), None, ""
        mask = xgr.allocate_token_bitmask(1, info.vocab_size)
        while not matcher.is_terminated() and len(text) < 2000:
            t = time.perf_counter()
            matcher.fill_next_token_bitmask(mask)
            fill += time.perf_counter() - t
            logits = torch.randn(1, info.vocab_size)
            xgr.apply_token_bitmask_inplace(logits, mask)
            token = int(logits.argmax())
            t = time.perf_counter()
            assert matcher.accept_token(token)
            accept += time.perf_counter() - t
            steps += 1
            text += vocab[token] if token != eos else ""
        chars.append(len(text))
    return {
        "fill_us_per_step": round(fill / steps * 1e6, 1),
        "accept_us_per_step": round(accept / steps * 1e6, 1),
        "steps": steps,
        "mean_chars": round(sum(chars) / len(chars)),
    }


def main() -> None:
    vocab = vocabulary()
    info = xgr.TokenizerInfo(vocab, stop_token_ids=[len(vocab) - 1])
    compiler = xgr.GrammarCompiler(info, max_threads=1)
    for name, regex in json.load(sys.stdin).items():
        t0 = time.perf_counter()
        grammar = compiler.compile_regex(regex)
        compile_ms = round((time.perf_counter() - t0) * 1e3, 1)
        row = {"spelling": name, "compile_ms": compile_ms, **time_spelling(grammar, info, vocab)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
