"""What a fake engine writes: replies that satisfy a request's ``structured_outputs`` (a
``regex``, a JSON schema of integer fields, a ``choice``), and the top logprobs vLLM would attach to
a ``choice`` reply. Deterministic: the same seed gives the same reply."""

from __future__ import annotations

import importlib
import math
import re
from typing import Any

import orjson


def schema_reply(structured: dict[str, Any], seed: int) -> str:
    """Text that satisfies a ``structured_outputs`` request (integers derived from ``seed``)."""
    if "choice" in structured:
        choices = structured["choice"]
        return str(choices[seed % len(choices)])
    if "regex" in structured:
        return regex_reply(structured["regex"], seed)
    props = (structured.get("json") or {}).get("properties", {})
    out: dict[str, Any] = {}
    for i, (name, spec) in enumerate(props.items()):
        if spec.get("type") == "integer":
            lo, hi = int(spec.get("minimum", 0)), int(spec.get("maximum", 10))
            out[name] = lo + (seed >> (3 * i)) % (hi - lo + 1)
        else:
            out[name] = "fake reasoning"
    return orjson.dumps(out or {"score": 5}).decode()


_FILLER = "fake reasoning"


def regex_reply(pattern: str, seed: int) -> str:
    """A string ``pattern`` matches: alternatives picked from ``seed``, repeated character classes
    filled from a fixed phrase. Covers the patterns protocols send (literals, groups,
    alternation, character classes, bounded repeats)."""
    # The stdlib's own regex parser (``sre_parse``, private but stable since Python 3.0).
    parser: Any = importlib.import_module("re._parser")
    picks = iter(range(64))
    out: list[str] = []

    def emit(tree: Any) -> None:
        for op, arg in tree:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(arg))
            elif name == "SUBPATTERN":
                emit(arg[-1])
            elif name == "BRANCH":
                alternatives = arg[1]
                emit(alternatives[(seed >> (3 * next(picks))) % len(alternatives)])
            elif name in ("MAX_REPEAT", "MIN_REPEAT"):
                low, high, sub = arg
                if len(sub) == 1 and str(sub[0][0]) == "IN":
                    out.append(_fill(sub[0][1], low, high))
                else:
                    for _ in range(low):
                        emit(sub)
            elif name == "IN":
                out.append(_fill(arg, 1, 1))
            else:
                raise ValueError(f"fake engine cannot generate regex element {name}")

    emit(parser.parse(pattern))
    text = "".join(out)
    if re.fullmatch(pattern, text) is None:
        raise ValueError(f"generated {text!r} does not match {pattern!r}")
    return text


def _fill(char_class: Any, low: int, high: int) -> str:
    """Between ``low`` and ``high`` characters of a class, taken from the filler phrase."""
    pattern = re.compile("[" + "".join(_class_text(char_class)) + "]")
    usable = [c for c in _FILLER if pattern.fullmatch(c)]
    if not usable:
        usable = [c for c in map(chr, range(32, 127)) if pattern.fullmatch(c)][:1]
    text = "".join(usable)[: max(low, min(high, len(_FILLER)))]
    return text + usable[0] * (low - len(text))


def _class_text(items: Any) -> list[str]:
    parts: list[str] = []
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            parts.insert(0, "^")
        elif name == "LITERAL":
            parts.append(re.escape(chr(arg)))
        elif name == "RANGE":
            parts.append(f"{re.escape(chr(arg[0]))}-{re.escape(chr(arg[1]))}")
        else:
            raise ValueError(f"fake engine cannot generate character class element {name}")
    return parts


def first_token_logprobs(
    content: str, structured: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    """Top logprobs for the first token: most mass on ``content``, the rest spread on options."""
    options = [str(c) for c in structured.get("choice", [content])]
    k = min(int(body.get("top_logprobs") or 1), len(options))
    others = [o for o in options if o != content][: k - 1]
    rest = 0.3 / max(1, len(others))
    top = [{"token": content, "logprob": math.log(0.7 if others else 1.0)}]
    top += [{"token": o, "logprob": math.log(rest)} for o in others]
    return {"token": content, "logprob": top[0]["logprob"], "top_logprobs": top}
