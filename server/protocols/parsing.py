"""Defensive extraction of integer scores from judge replies.

Structured outputs make a well-formed JSON object the normal case, but replies can still be cut off
at ``max_tokens``, come from a server started without structured-output support, or use VIEScore's
original ``{"score": [a, b]}`` shape. Every path either finds each score inside its range or fails;
nothing is ever guessed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import orjson

from .base import ParseFailure

_NUMBER = r"(-?\d+(?:\.\d+)?)"


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
