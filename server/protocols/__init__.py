"""Scoring protocols (one module each) and the registry the app resolves names against."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import UnknownProtocol
from .base import Call, Item, Outcome, ParseFailure, Rejected, Sampling, ScoringProtocol
from .viescore import VIEScore

__all__ = [
    "Call",
    "Item",
    "Outcome",
    "ParseFailure",
    "ProtocolRegistry",
    "Rejected",
    "Sampling",
    "ScoringProtocol",
    "VIEScore",
]


class ProtocolRegistry:
    """Protocols by name; unknown names raise :class:`server.errors.UnknownProtocol`."""

    def __init__(self, protocols: Iterable[ScoringProtocol], default: str) -> None:
        self._by_name = {p.name: p for p in protocols}
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
