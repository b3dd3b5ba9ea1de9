"""Scoring protocols (one module each) and the registry the app resolves names against."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import ProtocolUnavailable, UnknownProtocol
from .base import Call, Item, Meta, Outcome, ParseFailure, Rejected, Sampling, ScoringProtocol
from .expected import ExpectedScore
from .gedit import GEdit
from .imgedit import ImgEdit
from .loader import TemplateError, load_templates
from .reference import ReferencePromptsError
from .rubric import RubricProtocol, edit_rubric
from .sampled import Sampled
from .unconstrained import Unconstrained
from .viescore import VIEScore

__all__ = [
    "Call",
    "ExpectedScore",
    "GEdit",
    "ImgEdit",
    "Item",
    "Meta",
    "Outcome",
    "ParseFailure",
    "ProtocolRegistry",
    "ReferencePromptsError",
    "Rejected",
    "RubricProtocol",
    "Sampled",
    "Sampling",
    "ScoringProtocol",
    "TemplateError",
    "Unconstrained",
    "VIEScore",
    "edit_rubric",
    "load_templates",
]


class ProtocolRegistry:
    """Protocols by name; unknown names raise :class:`editjudge.server.errors.UnknownProtocol`.

    ``unavailable`` maps names this router knows but cannot serve as configured (``gedit`` without
    its reference prompts) to the message that says how to enable them.
    """

    def __init__(
        self,
        protocols: Iterable[ScoringProtocol],
        default: str,
        unavailable: Mapping[str, str] | None = None,
    ) -> None:
        self._by_name: dict[str, ScoringProtocol] = {}
        for p in protocols:
            if p.name in self._by_name:
                raise ValueError(f"two protocols are named {p.name!r}")
            self._by_name[p.name] = p
        self._unavailable = {
            name: why for name, why in (unavailable or {}).items() if name not in self._by_name
        }
        if default in self._unavailable:
            raise ValueError(f"default protocol: {self._unavailable[default]}")
        if default not in self._by_name:
            raise ValueError(f"default protocol {default!r} is not one of {self.names()}")
        self.default = default

    def get(self, name: str | None) -> ScoringProtocol:
        chosen = name or self.default
        try:
            return self._by_name[chosen]
        except KeyError:
            if chosen in self._unavailable:
                raise ProtocolUnavailable(self._unavailable[chosen]) from None
            raise UnknownProtocol(
                f"unknown protocol {chosen!r}; available: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._by_name)
