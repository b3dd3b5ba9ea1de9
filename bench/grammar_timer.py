"""The timing half of :mod:`bench.grammar_masks`, run by a Python that has vLLM's structured-output
backends (xgrammar and llguidance, vLLM's ``guidance``): reads ``{name: regex}`` on stdin, prints
one JSON line per backend and spelling. Imports nothing from editjudge."""

from __future__ import annotations

import json
import random
import string
import sys
import time
from typing import Any

import llguidance as llg  # type: ignore[import-not-found,unused-ignore]
import llguidance.torch as llt  # type: ignore[import-not-found,unused-ignore]
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


class XGrammar:
    """xgrammar, as vLLM's ``xgrammar`` backend drives it."""

    name = "xgrammar"

    def __init__(self, vocab: list[str]) -> None:
        self.info = xgr.TokenizerInfo(vocab, stop_token_ids=[len(vocab) - 1])
        self.compiler = xgr.GrammarCompiler(self.info, max_threads=1)
        self.mask = xgr.allocate_token_bitmask(1, self.info.vocab_size)

    def compile(self, regex: str) -> Any:
        return self.compiler.compile_regex(regex)

    def matcher(self, grammar: Any) -> Any:
        return xgr.GrammarMatcher(grammar)

    def fill(self, matcher: Any) -> None:
        matcher.fill_next_token_bitmask(self.mask)

    def apply(self, logits: Any) -> None:
        xgr.apply_token_bitmask_inplace(logits, self.mask)

    def accept(self, matcher: Any, token: int) -> bool:
        return bool(matcher.accept_token(token))

    def done(self, matcher: Any) -> bool:
        return bool(matcher.is_terminated())


class _Vocab:
    """The synthetic vocabulary in the shape llguidance's ``TokenizerWrapper`` reads."""

    def __init__(self, vocab: list[str]) -> None:
        self.tokens = [v.encode("latin-1") if i < 256 else v.encode() for i, v in enumerate(vocab)]
        self.eos_token_id = len(vocab) - 1
        self.bos_token_id = None
        self.special_token_ids = [self.eos_token_id]

    def __call__(self, text: str | bytes) -> list[int]:
        # byte tokens first: any text tokenizes as its bytes
        return list(text.encode() if isinstance(text, str) else text)


class Guidance:
    """llguidance, as vLLM's ``guidance`` backend drives it."""

    name = "guidance"

    def __init__(self, vocab: list[str]) -> None:
        self.tokenizer = llg.LLTokenizer(llg.TokenizerWrapper(_Vocab(vocab)))
        self.mask = llt.allocate_token_bitmask(1, self.tokenizer.vocab_size)

    def compile(self, regex: str) -> Any:
        grammar = llg.grammar_from("regex", regex)
        self.matcher(grammar)  # llguidance compiles when a matcher is made
        return grammar

    def matcher(self, grammar: Any) -> Any:
        matcher = llg.LLMatcher(self.tokenizer, grammar)
        if matcher.is_error():
            raise ValueError(matcher.get_error())
        return matcher

    def fill(self, matcher: Any) -> None:
        llt.fill_next_token_bitmask(matcher, self.mask, 0)

    def apply(self, logits: Any) -> None:
        llt.apply_token_bitmask_inplace(logits, self.mask)

    def accept(self, matcher: Any, token: int) -> bool:
        return bool(matcher.consume_token(token))

    def done(self, matcher: Any) -> bool:
        return bool(matcher.is_stopped())


def time_spelling(backend: Any, grammar: Any, vocab: list[str]) -> dict[str, Any]:
    """Replies drawn like a random-weight model's, at least 300 steps and 3 replies."""
    eos = len(vocab) - 1
    fill = accept = 0.0
    steps, chars = 0, []
    torch.manual_seed(0)
    while steps < 300 or len(chars) < 3:
        matcher, text = backend.matcher(grammar), ""
        while not backend.done(matcher) and len(text) < 2000:
            t = time.perf_counter()
            backend.fill(matcher)
            fill += time.perf_counter() - t
            logits = torch.randn(1, len(vocab))
            backend.apply(logits)
            token = int(logits.argmax())
            t = time.perf_counter()
            assert backend.accept(matcher, token)
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
    regexes = json.load(sys.stdin)
    for backend in (XGrammar(vocab), Guidance(vocab)):
        for name, regex in regexes.items():
            t0 = time.perf_counter()
            grammar = backend.compile(regex)
            compile_ms = round((time.perf_counter() - t0) * 1e3, 1)
            row = {"backend": backend.name, "spelling": name, "compile_ms": compile_ms}
            print(json.dumps({**row, **time_spelling(backend, grammar, vocab)}), flush=True)


if __name__ == "__main__":
    main()
