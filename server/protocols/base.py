"""What a scoring protocol is: the calls it makes for one item and how it combines the replies.

A protocol never talks to the network. :mod:`server.scoring` builds each call's chat-completions
body from :meth:`ScoringProtocol.calls`, sends all calls of an item to one engine (so its encoder
and prefix caches see the item's images once), and hands the replies to
:meth:`ScoringProtocol.combine`.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine import ChatReply
from ..errors import EditJudgeError
from ..images import PreparedImage

Content = list[dict[str, Any]]


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters sent with every call: deterministic by default."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed}


@dataclass(frozen=True)
class Item:
    """One validated edit to judge."""

    instruction: str
    image: PreparedImage
    source: PreparedImage | None = None
    id: str | None = None


@dataclass(frozen=True)
class Rejected:
    """A batch entry that failed validation; it becomes an error result in its place."""

    id: str | None
    error: EditJudgeError


@dataclass(frozen=True)
class Call:
    """One chat completion an item needs: its name, message content and extra request fields."""

    name: str
    content: Content
    params: dict[str, Any] = field(default_factory=dict)

    def body(self, model: str, sampling: Sampling) -> dict[str, Any]:
        return {
            "model": model,
            "messages": [{"role": "user", "content": self.content}],
            **sampling.as_dict(),
            **self.params,
        }


@dataclass(frozen=True)
class Outcome:
    """A protocol's verdict on one item."""

    score: float
    scores: dict[str, float]
    reasoning: str | None
    raw: str


class ParseFailure(Exception):
    """A reply had no valid score. ``raw`` keeps what the judge said, for the error item."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.message = message
        self.raw = raw


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def image(img: PreparedImage) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": img.data_url()}}


def fingerprint_of(*parts: object) -> str:
    """A short stable hash of a protocol's prompts, schemas and call parameters."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class ScoringProtocol(ABC):
    """A way of turning judge replies into a 0-10 score."""

    name: str
    description: str = ""

    @property
    @abstractmethod
    def template_hash(self) -> str:
        """Changes whenever prompts, schemas or call parameters change."""

    @abstractmethod
    def calls(self, item: Item) -> Sequence[Call]:
        """The chat completions to run for ``item``; independent of one another."""

    @abstractmethod
    def combine(self, item: Item, replies: Mapping[str, ChatReply]) -> Outcome:
        """Merge the replies (keyed by call name); raise :class:`ParseFailure` if unscorable."""

    def prefix(self, source: PreparedImage, instruction: str) -> Call | None:
        """A call whose prompt is the prefix shared by a group's candidates (for cache priming)."""
        return None
