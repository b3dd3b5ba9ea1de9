"""The judge's reply format: how it is constrained, how long it can be, and how it is parsed.

A scoring call asks for one compact JSON object (:class:`ScoreFormat`): integer criteria in a range,
optionally a short reasoning. The constraint is sent as a regular expression
(``structured_outputs.regex``) rather than a JSON schema, because vLLM's JSON-schema grammars allow
any amount of whitespace between tokens unless the *engine* was started with
``disable_any_whitespace`` (the per-request field of that name is ignored by the xgrammar and
guidance backends of vLLM 0.26-0.32): a weak or random-weight model then pads with whitespace until
``max_tokens``. The regular expression admits exactly one compact spelling, so every reply ends
after a bounded number of characters whatever the engine's flags, and ``max_tokens`` is sized from
that bound (:meth:`ScoreFormat.max_tokens`).

Parsing stays defensive: replies can still come from an engine that ignored the constraint, or use
VIEScore's original ``{"score": [a, b]}`` shape. Every path either finds each score inside its
range or fails; nothing is ever guessed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..engine import ChatReply
from .base import ParseFailure

_NUMBER = r"(-?\d+(?:\.\d+)?)"
# Printable ASCII without '"' and '\\': a reasoning needs no escapes, and one character can never
# take more than one token (a multi-byte character could take several).
REASONING_CHARS = r"[ !#-\[\]-~]"


@dataclass(frozen=True)
class ScoreFormat:
    """A compact JSON object of integer ``fields`` in ``[lo, hi]``, then (``reasoning_chars`` > 0)
    a ``reasoning`` string of at most that many characters; ``reasoning_first`` puts it first."""

    fields: tuple[str, ...]
    lo: int
    hi: int
    reasoning_chars: int = 0
    reasoning_first: bool = False

    def _members(self) -> list[tuple[str, str, int]]:
        """(key, value pattern, longest value) per member, in reply order."""
        values = "|".join(str(v) for v in range(self.hi, self.lo - 1, -1))
        longest = max(len(str(self.lo)), len(str(self.hi)))
        members = [(f, f"(?:{values})", longest) for f in self.fields]
        if self.reasoning_chars > 0:
            # Last, the reasoning is left open-ended: a bounded repeat ({0,240}) costs xgrammar
            # ~0.8 ms per sequence per decode step, against ~0.02 ms for '*' (measured with a
            # 151k-token vocabulary), and at 200 running requests that mask work, not the GPU,
            # set the pace (bench/results/gpu-h200x2-2026-11-27). max_tokens still bounds the
            # reply, and a reply cut inside its reasoning has every score already
            # (close_cut_reasoning). First, the scores follow it: only a bound guarantees them.
            repeat = f"{{0,{self.reasoning_chars}}}" if self.reasoning_first else "*"
            text = (f'"{REASONING_CHARS}{repeat}"', self.reasoning_chars + 2)
            reasoning = ("reasoning", *text)
            members = [reasoning, *members] if self.reasoning_first else [*members, reasoning]
        return members

    def regex(self) -> str:
        """The one spelling a reply may take (for ``structured_outputs.regex``)."""
        body = ",".join(f'"{re.escape(k)}":{v}' for k, v, _ in self._members())
        return "\\{" + body + "\\}"

    def max_chars(self) -> int:
        """Length of the longest reply the regular expression admits."""
        members = self._members()
        return 2 + len(members) - 1 + sum(len(k) + 3 + n for k, _, n in members)

    def max_tokens(self) -> int:
        """The token budget. With a bounded reasoning (or none): room for the longest reply plus
        the end-of-sequence token, so a reply in the format always finishes with ``stop`` (each
        token holds >= 1 character). With the open-ended closing reasoning: the scores at a token
        per character, the reasoning at two characters per token (prose averages 3-4 in Qwen's
        vocabulary), so a reasoning of ``reasoning_chars`` ends first and a longer one is cut and
        closed (:func:`close_cut_reasoning`) without costing more decode steps than it was worth."""
        if self.reasoning_chars > 0 and not self.reasoning_first:
            return self.max_chars() - self.reasoning_chars + -(-self.reasoning_chars // 2) + 1
        return self.max_chars() + 1

    def params(self) -> dict[str, Any]:
        """The request fields that ask for this format."""
        return {"max_tokens": self.max_tokens(), "structured_outputs": {"regex": self.regex()}}

    def parse(self, raw: str) -> tuple[dict[str, float], str | None]:
        """``({field: value}, reasoning)`` from a reply, or :class:`ParseFailure`."""
        return parse_scores(raw, self.fields, self.lo, self.hi)


_CUT_IN_REASONING = re.compile(
    r'\{(?:"[a-z_][a-z0-9_]*":-?\d+,)+"reasoning":"' + REASONING_CHARS + "*"
)


def close_cut_reasoning(content: str) -> str | None:
    """A reply cut off at ``max_tokens`` inside the open-ended reasoning that ends a
    :class:`ScoreFormat` reply, closed (``"}`` appended): every score came before the cut. None
    for any other reply, which stays a ``truncated_reply``."""
    return content + '"}' if _CUT_IN_REASONING.fullmatch(content) else None


def score_schema(fields: Sequence[str], lo: int, hi: int, reasoning_chars: int) -> dict[str, Any]:
    """JSON schema asking for integer ``fields`` in [lo, hi], then an optional short reasoning."""
    props: dict[str, Any] = {f: {"type": "integer", "minimum": lo, "maximum": hi} for f in fields}
    required = list(fields)
    if reasoning_chars > 0:
        props["reasoning"] = {"type": "string", "maxLength": reasoning_chars}
        required.append("reasoning")
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def parse_scores(
    raw: str, fields: Sequence[str], lo: float, hi: float
) -> tuple[dict[str, float], str | None]:
    """Return ``({field: value}, reasoning)`` or raise :class:`ParseFailure`."""
    obj = _load_object(raw)
    if obj is not None:
        found = _from_object(obj, fields)
        reasoning = obj.get("reasoning")
        reasoning = reasoning if isinstance(reasoning, str) else None
    else:
        found, reasoning = _from_text(raw, fields), None
    missing = [f for f in fields if f not in found]
    if missing:
        raise ParseFailure(f"reply has no valid {', '.join(missing)}", raw)
    for name, value in found.items():
        if not (lo <= value <= hi):
            raise ParseFailure(f"{name}={value:g} is outside [{lo:g}, {hi:g}]", raw)
    return found, reasoning


def _load_object(raw: str) -> dict[str, Any] | None:
    candidate = raw.strip()
    if candidate.startswith("```"):  # fenced code block
        candidate = candidate.strip("`").removeprefix("json").strip()
    try:
        obj = orjson.loads(candidate)
    except orjson.JSONDecodeError:
        start, end = candidate.find("{"), candidate.rfind("}")
        if start < 0 or end <= start:
            return None
        try:
            obj = orjson.loads(candidate[start : end + 1])
        except orjson.JSONDecodeError:
            return None
    return obj if isinstance(obj, dict) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _from_object(obj: dict[str, Any], fields: Sequence[str]) -> dict[str, float]:
    found = {f: v for f in fields if (v := _number(obj.get(f))) is not None}
    listed = obj.get("score")
    if len(found) < len(fields) and isinstance(listed, list) and len(listed) == len(fields):
        # VIEScore's own reply shape: {"score": [s1, s2], "reasoning": ...}
        values = [_number(v) for v in listed]
        if all(v is not None for v in values):
            found = {f: float(v) for f, v in zip(fields, values, strict=True) if v is not None}
    return found


def _from_text(raw: str, fields: Sequence[str]) -> dict[str, float]:
    """Scores from a reply that is not valid JSON (e.g. cut off inside the reasoning)."""
    found: dict[str, float] = {}
    for f in fields:
        m = re.search(rf'"{re.escape(f)}"\s*:\s*{_NUMBER}', raw)
        if m:
            found[f] = float(m.group(1))
    return found


def complete_replies(replies: Mapping[str, ChatReply]) -> Mapping[str, ChatReply]:
    """The replies a protocol may read: a reply the engine cut off at ``max_tokens`` is no verdict
    unless the cut fell inside a constrained reply's closing reasoning (every score before it).

    Protocols size ``max_tokens`` so that a reply in the requested format always ends first; a
    cut-off reply means the engine did not follow the format (or a custom protocol's budget is too
    small), which the error code ``truncated_reply`` says instead of a misleading
    ``unparseable_reply``.
    """
    out, cut = dict(replies), []
    for name, reply in replies.items():
        if reply.finish_reason != "length":
            continue
        closed = close_cut_reasoning(reply.content)
        if closed is None:
            cut.append(name)
        else:
            out[name] = dataclasses.replace(reply, content=closed)
    if cut:
        if len(replies) == 1:
            raw = next(iter(replies.values())).content
        else:
            raw = "\n".join(f"{name}: {reply.content}" for name, reply in replies.items())
        message = f"the judge's reply ({', '.join(cut)}) was cut off at max_tokens, incomplete"
        raise ParseFailure(message, raw, code="truncated_reply")
    return out
