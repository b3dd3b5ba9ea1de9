"""``imgedit``: ImgEdit's Basic benchmark judge, with the prompts of the user's checkout.

ImgEdit (``Benchmark/Basic/basic_bench.py``) has one prompt per edit type in ``prompts.json``: 1-5
anchors for three criteria, the rule that the later scores may not exceed the first, and a reply
that writes a brief reasoning first, then one ``Label: N`` line per criterion. The reference sends
``[prompt with <edit_prompt> replaced by the instruction, original image, edited image]`` and
scores an edit by the mean of the ``Label: N`` lines of the reply, rounded to two decimals
(``step1_get_avgscore.py``: a line counts when it splits on ``": "`` into two parts and the second
is digits).

Here an item picks its prompt with ``meta.edit_type``. The criteria, the reasoning line and the
scale are read from each prompt's structure (the ``Label: ...`` lines before the ``<edit_prompt>``
line; the numbered anchors), never written here. A reply is read with the reference's rule, and
must hold one score per criterion, each within the scale; otherwise it is an error item, where the
reference would average whatever lines it found. ``scores`` has the criteria (snake-case labels)
and ``overall`` (the reference's rounded mean, 1-5); ``score`` maps ``overall`` onto 0-10.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine import ChatReply
from ..errors import InvalidRequest
from .base import (
    Call,
    Item,
    Meta,
    Outcome,
    ParseFailure,
    ScoringProtocol,
    fingerprint_of,
    image,
    text,
)
from .reference import ReferencePromptsError, json_strings

SETTING = "EDITJUDGE_IMGEDIT_PROMPTS"
PLACEHOLDER = "<edit_prompt>"
MAX_TOKENS = 512
UNAVAILABLE = (
    f"protocol 'imgedit' needs {SETTING}: point it at ImgEdit's Benchmark/Basic/prompts.json (in a "
    "checkout of github.com/PKU-YuanGroup/ImgEdit) and restart the router. The generic 1-5 rubric "
    "that used to answer to 'imgedit' is now 'edit-rubric'"
)
_ANCHOR = re.compile(r"^(\d+)\s", re.MULTILINE)
_REGEX_SPECIAL = frozenset("\\.^$*+?{}[]|()")


@dataclass(frozen=True)
class EditTypePrompt:
    """One edit type's prompt and what its structure says about the reply."""

    edit_type: str
    prompt: str
    reasoning_label: str
    labels: tuple[str, ...]
    lo: int
    hi: int

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(_snake(label) for label in self.labels)

    def regex(self, reasoning_chars: int) -> str:
        """The reply the prompt shows: the reasoning line, then one ``Label: N`` line each."""
        scale = f"[{self.lo}-{self.hi}]" if self.hi <= 9 else _alternatives(self.lo, self.hi)
        lines = [f"{_literal(self.reasoning_label)}: [ -~]{{0,{reasoning_chars}}}"]
        lines += [f"{_literal(label)}: {scale}" for label in self.labels]
        return r"\n".join(lines)

    def longest(self, reasoning_chars: int) -> int:
        head = len(self.reasoning_label) + 2 + reasoning_chars
        return head + sum(1 + len(lb) + 2 + len(str(self.hi)) for lb in self.labels)


def read_prompts(path: Path) -> dict[str, EditTypePrompt]:
    """Every edit type of ImgEdit's ``prompts.json`` at ``path``, checked."""
    out = {}
    for edit_type, prompt in json_strings(path, SETTING).items():
        try:
            out[edit_type] = structure(edit_type, prompt)
        except ValueError as exc:
            where = f"{SETTING}={path}: edit type {edit_type!r}"
            raise ReferencePromptsError(f"{where}: {exc}") from None
    return out


def structure(edit_type: str, prompt: str) -> EditTypePrompt:
    """What the prompt's own text says about the reply; ValueError if it says too little."""
    lines = prompt.split("\n")
    at = next((i for i, line in enumerate(lines) if PLACEHOLDER in line), None)
    if at is None:
        raise ValueError(f"the prompt has no {PLACEHOLDER}: the instruction would be lost")
    block: list[str] = []
    for line in reversed(lines[:at]):  # the "Label: ..." lines just before the instruction
        if ": " not in line:
            break
        block.insert(0, line.split(": ", 1)[0].strip())
    anchors = sorted({int(n) for n in _ANCHOR.findall(prompt)})
    if len(block) < 2 or not anchors:
        raise ValueError("no reply format ('Label: ...' lines) or no numbered score anchors found")
    lo, hi = anchors[0], anchors[-1]
    if anchors != list(range(lo, hi + 1)) or lo == hi:
        raise ValueError(f"the score anchors {anchors} are not a scale")
    found = EditTypePrompt(edit_type, prompt, block[0], tuple(block[1:]), lo, hi)
    names = found.fields
    if len(set(names)) != len(names) or ({"", "overall", "score", "reasoning"} & set(names)):
        raise ValueError(f"the criteria {list(found.labels)} do not give distinct score names")
    return found


class ImgEditType(ScoringProtocol):
    """The judge for one edit type."""

    name = "imgedit"

    def __init__(self, spec: EditTypePrompt, constrained: bool, reasoning_chars: int) -> None:
        self.spec = spec
        self.description = f"ImgEdit {spec.edit_type}: mean of the criteria, mapped to 0-10."
        self._params: dict[str, Any] = {"max_tokens": MAX_TOKENS}
        if constrained:
            budget = max(MAX_TOKENS, spec.longest(reasoning_chars) + 1)
            regex = spec.regex(reasoning_chars)
            self._params = {"max_tokens": budget, "structured_outputs": {"regex": regex}}
        self._hash = fingerprint_of(self.name, spec.edit_type, spec.prompt, self._params)

    @property
    def template_hash(self) -> str:
        return self._hash

    def prompt(self, instruction: str) -> str:
        return self.spec.prompt.replace(PLACEHOLDER, instruction)

    def prepare(self, item: Item) -> Item:
        if item.source is None:
            raise InvalidRequest("imgedit judges an edit against its source: send source_image")
        return item

    def calls(self, item: Item) -> Sequence[Call]:
        if item.source is None:  # prepare() refuses such items at intake
            raise InvalidRequest("imgedit judges an edit against its source: send source_image")
        content = [text(self.prompt(item.instruction)), image(item.source), image(item.image)]
        return [Call("imgedit", content, self._params)]

    def combine(self, item: Item, replies: Mapping[str, ChatReply]) -> Outcome:
        raw = replies["imgedit"].content
        values = reference_scores(raw)
        spec = self.spec
        if len(values) != len(spec.labels):
            raise ParseFailure(
                f"reply has {len(values)} score line(s); the prompt asks for {len(spec.labels)}",
                raw,
            )
        for label, value in zip(spec.labels, values, strict=True):
            if not spec.lo <= value <= spec.hi:
                raise ParseFailure(f"{label}: {value} is outside [{spec.lo}, {spec.hi}]", raw)
        overall = round(sum(values) / len(values), 2)
        scores = {f: float(v) for f, v in zip(spec.fields, values, strict=True)}
        scores["overall"] = overall
        score = (overall - spec.lo) / (spec.hi - spec.lo) * 10.0
        return Outcome(score, scores, self._reasoning(raw), raw)

    def _reasoning(self, raw: str) -> str | None:
        head = f"{self.spec.reasoning_label}: "
        for line in raw.splitlines():
            if line.strip().startswith(head):
                return line.strip()[len(head) :] or None
        return None


class ImgEdit(ScoringProtocol):
    """Picks the edit type's judge from ``meta.edit_type`` at intake."""

    name = "imgedit"
    description = "ImgEdit Basic with the reference prompts, one per edit type (meta.edit_type)."

    def __init__(
        self,
        prompts: Mapping[str, EditTypePrompt],
        *,
        constrained: bool = False,
        reasoning_chars: int = 240,
    ) -> None:
        self.types = {k: ImgEditType(v, constrained, reasoning_chars) for k, v in prompts.items()}
        self._hash = fingerprint_of(self.name, sorted(t.template_hash for t in self.types.values()))

    @classmethod
    def from_file(
        cls, path: Path, *, constrained: bool = False, reasoning_chars: int = 240
    ) -> ImgEdit:
        """The protocol built from ImgEdit's ``prompts.json`` at ``path``."""
        return cls(read_prompts(path), constrained=constrained, reasoning_chars=reasoning_chars)

    @property
    def template_hash(self) -> str:
        return self._hash

    def specialize(self, meta: Meta | None) -> ScoringProtocol:
        edit_type = (meta or {}).get("edit_type")
        if not isinstance(edit_type, str) or edit_type not in self.types:
            known = ", ".join(sorted(self.types))
            raise InvalidRequest(f"imgedit needs meta.edit_type, one of: {known}")
        return self.types[edit_type]

    def calls(self, item: Item) -> Sequence[Call]:
        return self.specialize(item.meta).calls(item)

    def combine(self, item: Item, replies: Mapping[str, ChatReply]) -> Outcome:
        return self.specialize(item.meta).combine(item, replies)


def reference_scores(raw: str) -> list[int]:
    """The integers ImgEdit's ``step1_get_avgscore.py`` reads from a reply, in order."""
    found = []
    for line in raw.splitlines():
        parts = line.strip().split(": ")
        if len(parts) == 2 and parts[1].isdigit():
            try:
                found.append(int(parts[1]))
            except ValueError:  # digits int() cannot read (e.g. superscripts): the reference fails
                raise ParseFailure(f"score {parts[1]!r} is not a number", raw) from None
    return found


def _snake(label: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_")


def _literal(value: str) -> str:
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in value)


def _alternatives(lo: int, hi: int) -> str:
    return "(?:" + "|".join(str(v) for v in range(hi, lo - 1, -1)) + ")"
