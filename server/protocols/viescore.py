"""VIEScore's scoring rule in editjudge's own words: semantic consistency x perceptual quality.

Two judge calls per item, following the published method's structure (Ku et al., "VIEScore", ACL
2024, as GEdit-Bench uses it):

* semantic consistency (SC): source image, instruction and edited image -> how well the instruction
  was followed, and how little else was changed (over-editing), each 0-10;
* perceptual quality (PQ): the edited image alone -> naturalness and absence of artifacts, 0-10.

SC = min of its two scores, PQ = min of its two, overall = sqrt(SC * PQ). The prompts below are our
own wording of that rubric, and the layout is ours: content order puts the rubric and the source
image first, then the instruction, then the edited image, so calls that share a source share the
longest prompt prefix. The numbers are therefore not GEdit-Bench's; ``gedit``
(:mod:`.gedit`) judges with the benchmark's own prompts, layout and images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ..engine import ChatReply
from ..images import PreparedImage
from .base import (
    Call,
    Content,
    Item,
    Outcome,
    ScoringProtocol,
    fingerprint_of,
    image,
    separate,
    text,
)
from .parsing import ScoreFormat

SC_RUBRIC = (
    "You are an expert reviewer of AI image editing. An editor received an original image and a "
    "text instruction, and produced an edited image. Judge the edit with two integer scores from "
    "0 to 10.\n"
    "instruction_following: 0 if the edited image does not carry out the instruction at all, 10 "
    "if it carries it out completely and exactly.\n"
    "over_editing: 0 if the edited image has lost or changed much more of the original than the "
    "instruction asked for, 10 if only what the instruction asked for changed and everything "
    "else is kept.\n"
    "If the two images look identical, the edit most likely failed."
)
SC_RUBRIC_NO_SOURCE = (
    "You are an expert reviewer of AI-generated images. An image was produced from a text "
    "instruction. Judge with one integer score from 0 to 10.\n"
    "instruction_following: 0 if the image does not carry out the instruction at all, 10 if it "
    "carries it out completely and exactly."
)
PQ_RUBRIC = (
    "You are an expert reviewer of AI-generated images. Judge the image below on its own, with "
    "two integer scores from 0 to 10.\n"
    "naturalness: 0 if the scene looks unnatural (wrong perspective, lighting, shadows, scale or "
    "anatomy), 10 if it looks entirely natural.\n"
    "artifacts: 0 if large parts are distorted, smeared, noisy, blurred or watermarked, 10 if "
    "there are no visible artifacts."
)
QUESTION = "Answer in JSON with the scores{reason}."

SC_FIELDS = ("instruction_following", "over_editing")
PQ_FIELDS = ("naturalness", "artifacts")


class VIEScore(ScoringProtocol):
    """VIEScore's rule with editjudge's prompts: ``score`` = sqrt(min(SC) * min(PQ))."""

    name = "viescore"
    description = "VIEScore's rule, editjudge's prompts: sqrt(min(SC) * min(PQ)), two calls."

    def __init__(self, reasoning_chars: int = 240) -> None:
        self.reasoning_chars = reasoning_chars
        self._question = QUESTION.format(
            reason=" and a one-sentence reasoning" if reasoning_chars else ""
        )
        self._sc = ScoreFormat(SC_FIELDS, 0, 10, reasoning_chars)
        self._sc_no_source = ScoreFormat(SC_FIELDS[:1], 0, 10, reasoning_chars)
        self._pq = ScoreFormat(PQ_FIELDS, 0, 10, reasoning_chars)
        # Built once, not per call: the request fields are the same for every item.
        self._sc_params = self._sc.params()
        self._sc_params_no_source = self._sc_no_source.params()
        self._pq_params = self._pq.params()
        self._hash = fingerprint_of(
            self.name,
            SC_RUBRIC,
            SC_RUBRIC_NO_SOURCE,
            PQ_RUBRIC,
            self._question,
            self._sc_params,
            self._pq_params,
        )

    @property
    def template_hash(self) -> str:
        return self._hash

    @staticmethod
    def _sc_head(source: PreparedImage, instruction: str) -> Content:
        """The SC call's start, shared by every candidate of a source (and the priming call)."""
        return [
            text(SC_RUBRIC),
            text("Original image:"),
            image(source),
            text(f"Editing instruction: {instruction}"),
        ]

    def calls(self, item: Item) -> Sequence[Call]:
        if item.source is not None:
            sc_content = [
                *self._sc_head(item.source, item.instruction),
                text("Edited image:"),
                image(item.image),
                text(self._question),
            ]
            sc = Call("sc", separate(sc_content), self._sc_params)
        else:
            sc_content = [
                text(SC_RUBRIC_NO_SOURCE),
                text(f"Editing instruction: {item.instruction}"),
                image(item.image),
                text(self._question),
            ]
            sc = Call("sc", separate(sc_content), self._sc_params_no_source)
        pq_content = [text(PQ_RUBRIC), image(item.image), text(self._question)]
        pq = Call("pq", separate(pq_content), self._pq_params)
        return [sc, pq]

    def prefix(self, source: PreparedImage, instruction: str) -> Call | None:
        head = separate(self._sc_head(source, instruction), followed=True)
        return Call("prefix", head, {"max_tokens": 1})

    def combine(self, item: Item, replies: Mapping[str, ChatReply]) -> Outcome:
        sc_raw, pq_raw = replies["sc"].content, replies["pq"].content
        raw = f"SC: {sc_raw}\nPQ: {pq_raw}"
        sc_format = self._sc if item.source is not None else self._sc_no_source
        sc, sc_reason = sc_format.parse(sc_raw)
        pq, pq_reason = self._pq.parse(pq_raw)
        sc_score, pq_score = min(sc.values()), min(pq.values())
        scores = {
            **sc,
            **pq,
            "semantic_consistency": sc_score,
            "perceptual_quality": pq_score,
        }
        reasons = [f"SC: {sc_reason}" if sc_reason else "", f"PQ: {pq_reason}" if pq_reason else ""]
        reasoning = " ".join(r for r in reasons if r) or None
        return Outcome(math.sqrt(sc_score * pq_score), scores, reasoning, raw)
