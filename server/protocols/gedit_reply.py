"""The GEdit-Bench judge's reply: how the reference reads it, and the optional constraint.

GEdit-Bench (VIEScore's ``mllm_output_to_dict``) asks for ``{"score": [...], "reasoning": "..."}``
in free text and reads a reply in this order:

1. Exactly two ``||V^=^V||`` delimiters: the text between them. Otherwise the text from the first
   ``{`` to the last ``}``. Without braces: a bare ``[a, b]`` list of two integers, or a reply that
   is a single integer 0-10; anything else fails.
2. Newlines are removed and the text is loaded as JSON; a scalar ``score`` becomes a one-item list.
3. If that fails (or the object has no ``score``), unquoted keys and values are quoted once (keys
   before a ``:``; numbers become one-item lists; ``true``/``false``/``null`` stay) and the text is
   loaded again, as is.

:func:`parse_reply` follows the same steps with Python's own ``json`` (as the reference does: it
accepts ``NaN``), then checks what the reference leaves unchecked: ``score`` must be a non-empty
list of numbers in [0, 10]. Where the reference would retry, guess a random score or drop the item
on an exception, this raises :class:`ParseFailure`: an error item, never a guessed score.

With ``EDITJUDGE_REFERENCE_REPLY=constrained`` the reply is held to the layout the reference prompt
shows (:func:`reply_regex`), so every reply parses and ends within the token budget.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .base import ParseFailure
from .parsing import REASONING_CHARS

DELIMITER = "||V^=^V||"
LO, HI = 0, 10

_BARE_PAIR = re.compile(r"^\[\d+, ?\d+\]$")
_UNQUOTED_KEY = re.compile(r"(\w+):")
_MEMBER = re.compile(r'(".*?"):(.*?)(,|})')
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_LITERAL = re.compile(r"^(true|false|null)$", re.IGNORECASE)


def parse_reply(raw: str) -> tuple[list[float], str | None]:
    """``(scores, reasoning)`` from one reply, read as the reference reads it."""
    obj = reference_object(raw)
    if not isinstance(obj, dict) or "score" not in obj:
        raise ParseFailure('reply has no "score"', raw)
    listed = obj["score"]
    if not isinstance(listed, list) or not listed:
        raise ParseFailure('"score" is not a non-empty list', raw)
    scores: list[float] = []
    for value in listed:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParseFailure(f'"score" holds {value!r}, not a number', raw)
        if not (math.isfinite(value) and LO <= value <= HI):
            raise ParseFailure(f"score {value!r} is outside [{LO}, {HI}]", raw)
        scores.append(float(value))
    reasoning = obj.get("reasoning")
    return scores, reasoning if isinstance(reasoning, str) else None


def reference_object(raw: str) -> Any:
    """What the reference parser returns for ``raw`` (any JSON value), or ParseFailure where it
    returns its failure marker (and would query again or guess)."""
    if raw == "rate_limit_exceeded":
        raise ParseFailure("the reply is the rate-limit marker", raw)
    if raw.count(DELIMITER) == 2:
        start, end = raw.find(DELIMITER) + len(DELIMITER), raw.rfind(DELIMITER)
    else:
        start, end = raw.find("{"), raw.rfind("}") + 1
        if start == -1 or end == 0:
            return _without_braces(raw)
    if start == end:
        raise ParseFailure("the reply has no JSON between its delimiters", raw)
    text = raw[start:end].strip().replace("\n", "")
    obj = _loaded(text)
    if obj is not None:
        return obj
    try:
        return json.loads(repair(text))
    except (ValueError, RecursionError):
        raise ParseFailure("the reply's JSON cannot be read, even repaired", raw) from None


def _loaded(text: str) -> Any:
    """The JSON object with a list ``score``; None where the reference goes on to repair it
    (any failure: invalid JSON, not an object, no ``score``)."""
    try:
        obj = json.loads(text)
        if not isinstance(obj["score"], list):
            obj["score"] = [obj["score"]]
    except Exception:
        return None
    return obj


def _without_braces(raw: str) -> dict[str, Any]:
    pair = raw[raw.find("[") : raw.rfind("]") + 1]
    if _BARE_PAIR.match(pair):
        try:
            return {"score": json.loads(pair)}
        except ValueError:  # digits json does not read (e.g. other scripts'): no score
            raise ParseFailure("the reply's score list cannot be read", raw) from None
    try:
        value = int(raw)
    except ValueError:
        raise ParseFailure("the reply holds no JSON object and no score", raw) from None
    if not LO <= value <= HI:
        raise ParseFailure("the reply holds no JSON object and no score", raw)
    return {"score": [value]}


def repair(text: str) -> str:
    """The reference's one-shot repair of almost-JSON: quote bare keys, then bare values."""
    quoted = _UNQUOTED_KEY.sub(r'"\1":', text)
    return _MEMBER.sub(_quote_value, quoted)


def _quote_value(match: re.Match[str]) -> str:
    key, value, end = match.groups()
    value = value.strip()
    if _NUMBER.match(value):
        value = f"[{value}]"
    elif not _LITERAL.match(value):
        value = f'"{value}"'
    return f"{key}: {value}{end}"


_SCORE = "(?:10|[0-9])"
# The layout of the reference prompt's example, with two scores. The patterns are written out, not
# ``re.escape``d: newlines as ``\n``, spaces bare, as the engines' regex grammars expect.
_HEAD, _HEAD_RE = '{\n"score" : [', r'\{\n"score" : \['
_MIDDLE, _MIDDLE_RE = '],\n"reasoning" : "', r'\],\n"reasoning" : "'
_TAIL, _TAIL_RE = '"\n}', r'"\n\}'


def reply_regex(reasoning_chars: int) -> str:
    """The reference prompt's own layout, two integer scores 0-10 and a bounded reasoning."""
    reasoning = f"{REASONING_CHARS}{{0,{reasoning_chars}}}"
    return f"{_HEAD_RE}{_SCORE}, {_SCORE}{_MIDDLE_RE}{reasoning}{_TAIL_RE}"


def longest_reply(reasoning_chars: int) -> int:
    """Characters in the longest reply :func:`reply_regex` admits."""
    return len(_HEAD) + len("10, 10") + len(_MIDDLE) + reasoning_chars + len(_TAIL)
