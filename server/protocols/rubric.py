"""Rubric protocols: one constrained call with integer criteria, combined into 0-10.

The built-in ``edit-rubric`` is a generic rubric in our own words: three criteria on a 1-5 scale
(instruction adherence, editing quality, detail preservation), averaged. It reproduces no
benchmark (``imgedit`` is ImgEdit's own judge, see :mod:`.imgedit`). ``scores`` keeps the three
criteria and ``overall`` (their mean, 1-5); ``score`` is ``overall`` mapped linearly onto 0-10,
``(overall - 1) x 2.5``. Without a source image, detail preservation cannot be judged and is left
out.

Custom templates of type ``rubric`` (see :mod:`editjudge.server.protocols.loader`) are instances of
the same class with their own prompts, criteria, range and combination rule.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence

from ..engine import ChatReply
from ..images import PreparedImage
from .base import Call, Item, Outcome, ScoringProtocol, fingerprint_of
from .parsing import ScoreFormat
from .template import PromptTemplate


def _geometric_mean(values: Sequence[float]) -> float:
    return float(math.prod(values) ** (1.0 / len(values)))


COMBINE: dict[str, Callable[[Sequence[float]], float]] = {
    "mean": statistics.fmean,
    "min": min,
    "geometric_mean": _geometric_mean,
}

EDIT_RUBRIC_FIELDS = ("instruction_adherence", "editing_quality", "detail_preservation")
EDIT_RUBRIC_WITH_SOURCE = (
    "You are an expert reviewer of AI image editing. An editor received the original image below "
    "and a text instruction, and produced the edited image that follows. Rate the edit on three "
    "criteria, each an integer from 1 (very poor) to 5 (excellent).\n"
    "instruction_adherence: does the edit do what the instruction asks, fully and only that, "
    "with the right object, attribute, position and amount?\n"
    "editing_quality: is the edited region convincing - correct shape, lighting, shadows, "
    "perspective and texture, blended seamlessly, with no artifacts or distortions?\n"
    "detail_preservation: are the parts the instruction did not mention (background, other "
    "objects, identity, layout, style) kept unchanged?\n"
    "Original image:{source}\n"
    "Editing instruction: {instruction}\n"
    "Edited image:{image}\n"
    "Answer in JSON with the three scores{reason}."
)
EDIT_RUBRIC_WITHOUT_SOURCE = (
    "You are an expert reviewer of AI-generated images. The image below was produced from a text "
    "instruction. Rate it on two criteria, each an integer from 1 (very poor) to 5 (excellent).\n"
    "instruction_adherence: does the image show what the instruction asks, fully and exactly?\n"
    "editing_quality: does it look convincing - correct shape, lighting, shadows, perspective "
    "and texture, with no artifacts or distortions?\n"
    "Instruction: {instruction}\n"
    "Image:{image}\n"
    "Answer in JSON with the two scores{reason}."
)


class RubricProtocol(ScoringProtocol):
    """One constrained call; integer criteria in ``[lo, hi]``, combined, mapped to 0-10.

    ``with_source`` is the prompt for items with a source image; ``without_source`` the one for
    items without (``None``: ``with_source`` serves both and must not use ``{source}``).
    ``fields_without_source`` are the criteria asked when an item has no source image.
    ``reasoning_first`` has the judge write its reasoning (``reasoning_chars`` > 0) before the
    scores, as judges trained that way expect.
    """

    def __init__(
        self,
        name: str,
        *,
        with_source: str,
        without_source: str | None = None,
        fields: Sequence[str],
        fields_without_source: Sequence[str] | None = None,
        lo: int = 0,
        hi: int = 10,
        combine: str = "mean",
        description: str = "",
        reasoning_chars: int = 0,
        reasoning_first: bool = False,
    ) -> None:
        if reasoning_first and reasoning_chars <= 0:
            raise ValueError("reasoning first needs a reasoning: reasoning_chars must be above 0")
        self.fields = tuple(fields)
        self.fields_without_source = tuple(fields_without_source or fields)
        _check_rubric(self.fields, self.fields_without_source, lo, hi, combine)
        self.name, self.description = name, description
        self.lo, self.hi, self.combine_name = lo, hi, combine
        self.reasoning_chars = reasoning_chars
        reason = {"reason": " and a one-sentence reasoning" if reasoning_chars else ""}
        self._with, self._without = PromptTemplate.pair(with_source, without_source, reason)
        chars, first = reasoning_chars, reasoning_first
        self._format_with = ScoreFormat(self.fields, lo, hi, chars, first)
        self._format_without = ScoreFormat(self.fields_without_source, lo, hi, chars, first)
        # Built once: every call of an item carries one of these two.
        self._params_with = self._format_with.params()
        self._params_without = self._format_without.params()
        self._hash = fingerprint_of(
            name,
            with_source,
            without_source,
            self._params_with,
            self._params_without,
            lo,
            hi,
            combine,
        )

    @property
    def template_hash(self) -> str:
        return self._hash

    def _format(self, item: Item) -> ScoreFormat:
        return self._format_with if item.source is not None else self._format_without

    def calls(self, item: Item) -> Sequence[Call]:
        if item.source is not None:
            content = self._with.render(item.instruction, item.image, item.source)
            return [Call("rubric", content, self._params_with)]
        content = self._without.render(item.instruction, item.image, None)
        return [Call("rubric", content, self._params_without)]

    def prefix(self, source: PreparedImage, instruction: str) -> Call | None:
        return Call("prefix", self._with.prefix(instruction, source), {"max_tokens": 1})

    def combine(self, item: Item, replies: Mapping[str, ChatReply]) -> Outcome:
        raw = replies["rubric"].content
        found, reasoning = self._format(item).parse(raw)
        overall = COMBINE[self.combine_name](list(found.values()))
        score = (overall - self.lo) / (self.hi - self.lo) * 10.0
        return Outcome(score, {**found, "overall": overall}, reasoning, raw)


def _check_rubric(
    fields: Sequence[str], without: Sequence[str], lo: int, hi: int, combine: str
) -> None:
    if combine not in COMBINE:
        raise ValueError(f"combine must be one of {', '.join(COMBINE)}, not {combine!r}")
    if not fields or len(set(fields)) != len(fields) or not set(without) <= set(fields):
        raise ValueError("fields must be distinct and non-empty; fields_without_source a subset")
    reserved = {"overall", "reasoning", "sample_std", "score"} & set(fields)
    if reserved:
        raise ValueError(f"field names {sorted(reserved)} are reserved")
    if not 0 <= lo < hi:
        raise ValueError(f"the score range must satisfy 0 <= lo < hi (got {lo}, {hi})")


def edit_rubric(reasoning_chars: int = 0) -> RubricProtocol:
    """The built-in generic 1-5 rubric, ``edit-rubric`` (it answered to ``imgedit`` before that
    name went to ImgEdit's own judge)."""
    return RubricProtocol(
        "edit-rubric",
        with_source=EDIT_RUBRIC_WITH_SOURCE,
        without_source=EDIT_RUBRIC_WITHOUT_SOURCE,
        fields=EDIT_RUBRIC_FIELDS,
        fields_without_source=EDIT_RUBRIC_FIELDS[:2],
        lo=1,
        hi=5,
        combine="mean",
        description="Generic rubric: mean of three 1-5 criteria, mapped to 0-10.",
        reasoning_chars=reasoning_chars,
    )
