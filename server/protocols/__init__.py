"""Scoring protocols (one module each) and the registry the app resolves names against."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import UnknownProtocol
from .base import Call, Item, Outcome, ParseFailure, Rejected, Sampling, ScoringProtocol
from .expected import ExpectedScore
from .loader import TemplateError, load_templates
from .rubric import RubricProtocol, imgedit
from .viescore import VIEScore

__all__ = [
    "Call",
    "ExpectedScore",
    "Item",
    "Outcome",
    "ParseFailure",
    "ProtocolRegistry",
    "Rejected",
    "RubricProtocol",
    "Sampling",
    "ScoringProtocol",
    "TemplateError",
    "VIEScore",
    "imgedit",
    "load_templates",
]


class ProtocolRegistry:
    """Protocols by name; unknown names raise :class:`editjudge.server.errors.UnknownProtocol`."""

    def __init__(self, protocols: Iterable[ScoringProtocol], default: str) -> None:
        self._by_name: dict[str, ScoringProtocol] = {}
        for p in protocols:
            if p.name in self._by_name:
                raise ValueError(f"two protocols are named {p.name!r}")
            self._by_name[p.name] = p
        if default not in self._by_name:
            raise ValueError(f"default protocol {default!r} is not one of {self.names()}")
        self.default = default

    def get(self, name: str | None) -> ScoringProtocol:
        chosen = name or self.default
        try:
            return self._by_name[chosen]
        except KeyError:
            raise UnknownProtocol(
                f"unknown protocol {chosen!r}; available: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._by_name)
