"""Prompt templates: Python format strings with image placeholders.

A template is ordinary text with three placeholders: ``{instruction}`` (the editing instruction,
substituted as text), ``{source}`` (the source image) and ``{image}`` (the edited image). The two
image placeholders split the text into chat content parts, so the rendered prompt is a list of text
and image parts in exactly the order the template writes them. Literal braces are written ``{{``
and ``}}``.

Everything written before ``{image}`` does not depend on the candidate edit; that part is the
prompt prefix that candidates of one group share (see :meth:`PromptTemplate.prefix`), so templates
should put the rubric, the source image and the instruction first.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

from ..images import PreparedImage
from .base import Content, image, separate, text

FIELDS = frozenset({"instruction", "source", "image"})


class TemplateSyntaxError(ValueError):
    """A template string is malformed or uses placeholders it may not use."""


@dataclass(frozen=True)
class _Segment:
    kind: str  # "text" or a placeholder name
    value: str = ""


@dataclass(frozen=True)
class PromptTemplate:
    """A validated template; build with :meth:`parse`."""

    source_text: str
    segments: tuple[_Segment, ...]

    @classmethod
    def parse(cls, template: str, constants: Mapping[str, str] | None = None) -> PromptTemplate:
        """Validate ``template``; raise :class:`TemplateSyntaxError` naming the problem.

        ``constants`` are extra placeholders substituted as fixed text (e.g. ``{reason}``).
        """
        constants = constants or {}
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise TemplateSyntaxError(f"malformed format string: {exc}") from None
        segments: list[_Segment] = []
        for literal, field, spec, conversion in parsed:
            if literal:
                segments.append(_Segment("text", literal))
            if field is None:
                continue
            if spec or conversion:
                raise TemplateSyntaxError(f"placeholder {{{field}}} takes no format spec")
            if field in constants:
                segments.append(_Segment("text", constants[field]))
                continue
            if field not in FIELDS:
                allowed = ", ".join(f"{{{f}}}" for f in sorted(FIELDS | set(constants)))
                raise TemplateSyntaxError(f"unknown placeholder {{{field}}}; allowed: {allowed}")
            segments.append(_Segment(field))
        counts = {f: sum(s.kind == f for s in segments) for f in FIELDS}
        if counts["image"] != 1:
            raise TemplateSyntaxError("the template must contain {image} exactly once")
        if counts["source"] > 1:
            raise TemplateSyntaxError("{source} may appear at most once")
        return cls(template, tuple(segments))

    @classmethod
    def pair(
        cls,
        with_source: str,
        without_source: str | None,
        constants: Mapping[str, str] | None = None,
    ) -> tuple[PromptTemplate, PromptTemplate]:
        """Templates for items with and without a source image.

        With ``without_source`` None, ``with_source`` serves both and must not use ``{source}``;
        otherwise ``with_source`` must use ``{source}`` and ``without_source`` must not.
        """
        try:
            first = cls.parse(with_source, constants)
        except TemplateSyntaxError as exc:
            raise TemplateSyntaxError(f"prompt: {exc}") from None
        if without_source is None:
            if first.uses_source:
                raise TemplateSyntaxError(
                    "prompt uses {source}: add a prompt_without_source for items without one"
                )
            return first, first
        if not first.uses_source:
            raise TemplateSyntaxError(
                "prompt does not use {source}, so prompt_without_source is not needed"
            )
        try:
            second = cls.parse(without_source, constants)
        except TemplateSyntaxError as exc:
            raise TemplateSyntaxError(f"prompt_without_source: {exc}") from None
        if second.uses_source:
            raise TemplateSyntaxError("prompt_without_source must not use {source}")
        return first, second

    @property
    def uses_source(self) -> bool:
        return any(s.kind == "source" for s in self.segments)

    def render(
        self, instruction: str, edited: PreparedImage, source: PreparedImage | None
    ) -> Content:
        """The chat content parts of the full prompt."""
        return self._content(instruction, edited, source)

    def prefix(self, instruction: str, source: PreparedImage) -> Content:
        """The content parts before ``{image}``: what every candidate of a group shares."""
        return self._content(instruction, None, source)

    def _content(
        self, instruction: str, edited: PreparedImage | None, source: PreparedImage | None
    ) -> Content:
        parts: Content = []
        pending = ""
        for seg in self.segments:
            if seg.kind in ("text", "instruction"):
                pending += seg.value if seg.kind == "text" else instruction
                continue
            if pending.strip():
                parts.append(text(pending))
            pending = ""
            if seg.kind == "image":
                if edited is None:  # a prefix stops at the edited image
                    return separate(parts, followed=True)
                parts.append(image(edited))
            elif source is not None:
                parts.append(image(source))
        if pending.strip():
            parts.append(text(pending))
        return separate(parts)
