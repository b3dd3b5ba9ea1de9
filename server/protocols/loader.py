"""Custom scoring templates: one TOML file per protocol in ``EDITJUDGE_TEMPLATES_DIR``.

The file name (without ``.toml``) is the protocol name used in requests. Example
``templates/aesthetics.toml``::

    type = "rubric"                 # or "expected" (one digit 0-9, probability-weighted)
    description = "Aesthetics and faithfulness, 1-5"
    fields = ["faithfulness", "aesthetics"]   # rubric only
    range = [1, 5]                  # rubric only; default [0, 10]
    combine = "mean"                # rubric only: mean | min | geometric_mean
    prompt = '''
    Rate the edit. Original image:{source}
    Instruction: {instruction}
    Edited image:{image}
    Answer in JSON{reason}.'''
    prompt_without_source = '''
    Rate the image. Instruction: {instruction}
    Image:{image}
    Answer in JSON{reason}.'''
    reasoning_first = false         # rubric only: the reasoning before the scores
    reasoning_chars = 240           # rubric only: reasoning length (default: the router's)
    samples = 1                     # replies per item, averaged (above 1 needs a temperature)
    temperature = 0.7               # default: the router's (0)
    top_p = 1.0

Prompts are Python format strings (see :mod:`editjudge.server.protocols.template`); ``{reason}``
expands to a request for a short reasoning when the template asks for one (``EDITJUDGE_REASONING``
on, ``reasoning_chars`` above 0, or ``reasoning_first``). A prompt without ``{source}`` serves every
item and needs no ``prompt_without_source``. Every file is validated when the router starts; any
problem stops it with a message naming the file and the fault.
"""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .base import ScoringProtocol
from .expected import ExpectedScore
from .rubric import RubricProtocol
from .sampled import Sampled
from .template import TemplateSyntaxError

log = logging.getLogger("editjudge.templates")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_FIELD = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


class TemplateError(ValueError):
    """A custom template cannot be used; the message names the file and the problem."""


class TemplateSpec(BaseModel):
    """The keys a template file may have."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["rubric", "expected"] = "rubric"
    description: str = ""
    prompt: str = Field(..., min_length=1)
    prompt_without_source: str | None = None
    fields: list[str] | None = None
    fields_without_source: list[str] | None = None
    range: tuple[int, int] = (0, 10)
    combine: Literal["mean", "min", "geometric_mean"] = "mean"
    top_logprobs: int = Field(20, ge=10, le=20)
    reasoning_first: bool = False
    reasoning_chars: int | None = Field(None, ge=0, le=4000)
    samples: int = Field(1, ge=1, le=64)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)


def load_templates(
    directory: Path, reserved: set[str], reasoning_chars: int = 0, *, first_chars: int = 240
) -> list[ScoringProtocol]:
    """Every ``*.toml`` template in ``directory``; raise :class:`TemplateError` on any fault.

    ``reserved`` are names already taken (the built-in protocols). ``reasoning_chars`` is the
    router's reasoning length (0: none asked); ``first_chars`` the length a reasoning-first
    template asks for when it sets none and the router asks for none.
    """
    if not directory.is_dir():
        raise TemplateError(f"templates directory {directory} does not exist")
    out: list[ScoringProtocol] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix != ".toml":
            log.warning("ignoring %s in the templates directory: not a .toml file", path.name)
            continue
        out.append(load_template(path, reserved, reasoning_chars, first_chars=first_chars))
    return out


def load_template(
    path: Path, reserved: set[str], reasoning_chars: int = 0, *, first_chars: int = 240
) -> ScoringProtocol:
    """One template file as a protocol named after the file."""
    name = path.stem
    if not _NAME.match(name):
        raise TemplateError(f"{path}: name {name!r} must match {_NAME.pattern}")
    if name in reserved:
        raise TemplateError(f"{path}: {name!r} is a built-in protocol; rename the file")
    try:
        spec = TemplateSpec.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
        return _sampled(_build(name, spec, reasoning_chars, first_chars), spec)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"{path}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise TemplateError(f"{path}: {where}: {first['msg']}") from None
    except (TemplateSyntaxError, ValueError, OSError) as exc:
        raise TemplateError(f"{path}: {exc}") from None


def _sampled(protocol: ScoringProtocol, spec: TemplateSpec) -> ScoringProtocol:
    if spec.samples == 1 and spec.temperature is None:
        return protocol
    return Sampled(protocol, spec.samples, spec.temperature or 0.0, spec.top_p)


def _build(
    name: str, spec: TemplateSpec, reasoning_chars: int, first_chars: int
) -> ScoringProtocol:
    if spec.type == "expected":
        if spec.fields or spec.fields_without_source:
            raise ValueError("fields are for type 'rubric'; 'expected' asks for one digit")
        if spec.reasoning_first or spec.reasoning_chars:
            raise ValueError("'expected' asks for one digit: it has no reasoning")
        return ExpectedScore(
            name,
            spec.prompt,
            spec.prompt_without_source,
            description=spec.description or f"custom expected-score template {name}",
            top_logprobs=spec.top_logprobs,
        )
    if not spec.fields:
        raise ValueError("a rubric template needs 'fields' (the integer criteria it asks for)")
    bad = [f for f in [*spec.fields, *(spec.fields_without_source or [])] if not _FIELD.match(f)]
    if bad:
        raise ValueError(f"field names must match {_FIELD.pattern}: {', '.join(bad)}")
    return RubricProtocol(
        name,
        with_source=spec.prompt,
        without_source=spec.prompt_without_source,
        fields=spec.fields,
        fields_without_source=spec.fields_without_source,
        lo=spec.range[0],
        hi=spec.range[1],
        combine=spec.combine,
        description=spec.description or f"custom rubric template {name}",
        reasoning_chars=_reasoning_chars(spec, reasoning_chars, first_chars),
        reasoning_first=spec.reasoning_first,
    )


def _reasoning_chars(spec: TemplateSpec, router_chars: int, first_chars: int) -> int:
    """The template's own length, else the router's; a reasoning-first judge always gets one."""
    if spec.reasoning_chars is not None:
        return spec.reasoning_chars
    if spec.reasoning_first and router_chars == 0:
        return first_chars
    return router_chars
