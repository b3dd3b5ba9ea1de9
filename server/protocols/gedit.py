"""``gedit``: VIEScore exactly as GEdit-Bench runs it, with the prompts of the user's checkout.

What the judge reads is GEdit-Bench's own (``viescore/__init__.py``, task ``tie``, and the
Qwen2.5-VL backbone ``mllm_tools/qwen25vl_eval.py``), built from the string constants of the user's
``vie_prompts.py`` (read with :mod:`ast`, see :mod:`.reference`):

* SC: ``"\\n".join([_context_no_delimit, _prompts_0shot_two_image_edit_rule,
  _prompts_0shot_tie_rule_SC])`` with every ``<instruction>`` replaced by the instruction; the
  message is ``[source image, edited image, that text]``;
* PQ: ``"\\n".join([_context_no_delimit, _prompts_0shot_rule_PQ])``; the message is
  ``[edited image, that text]``.

The content parts are sent as they are, without :func:`~.base.separate`'s newlines: there is one
text part, after the images, exactly where the reference puts it. Images are resized as the
reference does (:mod:`.gedit_images`). Greedy decoding (the router's temperature 0), at most
:data:`MAX_NEW_TOKENS` tokens as the reference; replies are read as the reference reads them
(:mod:`.gedit_reply`). SC = min of its scores, PQ = min of its scores, ``score`` = √(SC·PQ).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..engine import ChatReply
from ..errors import InvalidRequest
from ..images import PreparedImage
from .base import Call, Item, Outcome, ScoringProtocol, fingerprint_of, image, text
from .gedit_images import POLICY, ReferenceImages
from .gedit_reply import longest_reply, parse_reply, reply_regex
from .reference import require, string_constants

SETTING = "EDITJUDGE_GEDIT_PROMPTS"
SC_PARTS = (
    "_context_no_delimit",
    "_prompts_0shot_two_image_edit_rule",
    "_prompts_0shot_tie_rule_SC",
)
PQ_PARTS = ("_context_no_delimit", "_prompts_0shot_rule_PQ")
PLACEHOLDER = "<instruction>"
# The reference generates at most this many tokens (``max_new_tokens``).
MAX_NEW_TOKENS = 512

UNAVAILABLE = (
    f"protocol 'gedit' needs {SETTING}: point it at GEdit-Bench's viescore/vie_prompts.py "
    "(GEdit-Bench/viescore/vie_prompts.py in a checkout of github.com/stepfun-ai/Step1X-Edit, or "
    "viescore/vie_prompts.py of github.com/TIGER-AI-Lab/VIEScore) and restart the router"
)

SC_NAMES = ("instruction_following", "over_editing")
PQ_NAMES = ("naturalness", "artifacts")


class GEdit(ScoringProtocol):
    """GEdit-Bench's VIEScore: the reference's prompts, layout, images, budget and parse."""

    name = "gedit"
    description = "GEdit-Bench VIEScore with the reference prompts: sqrt(min(SC) * min(PQ))."

    def __init__(
        self,
        sc_parts: Sequence[str],
        pq_parts: Sequence[str],
        *,
        constrained: bool = False,
        reasoning_chars: int = 240,
    ) -> None:
        self.sc_template = "\n".join(sc_parts)
        self.pq_text = "\n".join(pq_parts)
        if PLACEHOLDER not in self.sc_template:
            raise ValueError(f"the SC prompt has no {PLACEHOLDER}: the instruction would be lost")
        self.constrained = constrained
        self._params: dict[str, Any] = {"max_tokens": MAX_NEW_TOKENS}
        if constrained:
            budget = max(MAX_NEW_TOKENS, longest_reply(reasoning_chars) + 1)
            regex = reply_regex(reasoning_chars)
            self._params = {"max_tokens": budget, "structured_outputs": {"regex": regex}}
        self.images = ReferenceImages()
        self._hash = fingerprint_of(self.name, self.sc_template, self.pq_text, self._params, POLICY)

    @classmethod
    def from_file(
        cls, path: Path, *, constrained: bool = False, reasoning_chars: int = 240
    ) -> GEdit:
        """The protocol built from the reference ``vie_prompts.py`` at ``path``."""
        constants = string_constants(path, SETTING)
        sc = require(constants, SC_PARTS, path, SETTING)
        pq = require(constants, PQ_PARTS, path, SETTING)
        return cls(sc, pq, constrained=constrained, reasoning_chars=reasoning_chars)

    @property
    def template_hash(self) -> str:
        return self._hash

    def sc_text(self, instruction: str) -> str:
        """The SC prompt for ``instruction``, as the reference builds it."""
        return self.sc_template.replace(PLACEHOLDER, instruction)

    decodes_at_intake = True  # the edited image is resized to the source's size

    def prepare(self, item: Item) -> Item:
        if item.source is None:
            raise InvalidRequest("gedit judges an edit against its source: send source_image")
        source = self.images.source(item.source)
        edited = self.images.edited(item.image, item.source)
        return Item(item.instruction, edited, source, item.id, item.meta)

    def calls(self, item: Item) -> Sequence[Call]:
        if item.source is None:  # prepare() refuses such items at intake
            raise InvalidRequest("gedit judges an edit against its source: send source_image")
        sc = [image(item.source), image(item.image), text(self.sc_text(item.instruction))]
        pq = [image(item.image), text(self.pq_text)]
        return [Call("sc", sc, self._params), Call("pq", pq, self._params)]

    def prefix(self, source: PreparedImage, instruction: str) -> Call | None:
        # Candidates share only the source image, the first part of their SC prompt; ``source``
        # is already the judge's view of it (prepare() converted it).
        return Call("prefix", [image(source)], {"max_tokens": 1})

    def combine(self, item: Item, replies: Mapping[str, ChatReply]) -> Outcome:
        sc_raw, pq_raw = replies["sc"].content, replies["pq"].content
        raw = f"SC: {sc_raw}\nPQ: {pq_raw}"
        sc, sc_reason = parse_reply(sc_raw)
        pq, pq_reason = parse_reply(pq_raw)
        sc_score, pq_score = min(sc), min(pq)
        scores = {**_named(SC_NAMES, sc), **_named(PQ_NAMES, pq)}
        scores |= {"semantic_consistency": sc_score, "perceptual_quality": pq_score}
        reasons = [f"SC: {sc_reason}" if sc_reason else "", f"PQ: {pq_reason}" if pq_reason else ""]
        reasoning = " ".join(r for r in reasons if r) or None
        return Outcome(math.sqrt(sc_score * pq_score), scores, reasoning, raw)


def _named(names: Sequence[str], values: Sequence[float]) -> dict[str, float]:
    """Sub-scores by name when the judge gave the two the prompt asks for (it may give others:
    the reference takes the minimum of whatever list it gets, and so does this protocol)."""
    return dict(zip(names, values, strict=True)) if len(values) == len(names) else {}
