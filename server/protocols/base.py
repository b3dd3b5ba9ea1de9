"""What a scoring protocol is: the calls it makes for one item and how it combines the replies.

A protocol never talks to the network. :mod:`editjudge.server.scoring` builds each call's
chat-completions body from :meth:`ScoringProtocol.calls`, sends all calls of an item to one engine
(so its encoder and prefix caches see the item's images once), and hands the replies to
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


# The caller's own JSON object, echoed in the result (see ScoreItem.meta).
Meta = dict[str, Any]


@dataclass(frozen=True)
class Item:
    """One validated edit to judge. ``meta`` is the caller's own object, echoed in the result;
    a protocol may read fields of it (ImgEdit's ``edit_type``)."""

    instruction: str
    image: PreparedImage
    source: PreparedImage | None = None
    id: str | None = None
    meta: Meta | None = None


@dataclass(frozen=True)
class Rejected:
    """A batch entry that failed validation; it becomes an error result in its place."""

    id: str | None
    error: EditJudgeError
    meta: Meta | None = None


@dataclass(frozen=True)
class Call:
    """One chat completion an item needs: its name, message content and extra request fields.

    ``params`` override the router's sampling (a protocol that samples sets its own temperature);
    ``seed_offset`` is added to the router's seed, so the k-th of several samples is reproducible.
    """

    name: str
    content: Content
    params: dict[str, Any] = field(default_factory=dict)
    seed_offset: int = 0

    def body(self, model: str, sampling: Sampling) -> dict[str, Any]:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": self.content}],
            **sampling.as_dict(),
            **self.params,
        }
        if self.seed_offset:
            body["seed"] = sampling.seed + self.seed_offset
        return body


@dataclass(frozen=True)
class Outcome:
    """A protocol's verdict on one item."""

    score: float
    scores: dict[str, float]
    reasoning: str | None
    raw: str


class ParseFailure(Exception):
    """A reply had no valid score. ``raw`` keeps what the judge said, for the error item; ``code``
    is the item's error code (``unparseable_reply``, or ``truncated_reply`` for a reply cut off
    at ``max_tokens``)."""

    def __init__(self, message: str, raw: str, code: str = "unparseable_reply") -> None:
        super().__init__(message)
        self.message = message
        self.raw = raw
        self.code = code


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def separate(parts: Content, *, followed: bool = False) -> Content:
    """Content parts as the judge should read them: no two pieces of text run together.

    Qwen-VL chat templates concatenate a message's parts with nothing in between, so
    ``["...failed.", "Original image:", <img>, "Editing instruction: x"]`` would read
    ``...failed.Original image:<img>Editing instruction: x``. Here adjacent text parts are joined
    with a newline, and a newline separates text from an image on either side unless the text
    already has whitespace there. ``followed``: ``parts`` are the start of a longer prompt (a
    group's shared prefix), so they are laid out exactly as they are inside that prompt.
    """
    out: Content = []
    for part in parts:
        previous = out[-1] if out else None
        if part["type"] != "text":
            if previous is not None and previous["type"] == "text":
                out[-1] = text(_ends_line(previous["text"]))
            out.append(part)
            continue
        value = part["text"]
        if previous is not None and previous["type"] == "text":
            out[-1] = text(_ends_line(previous["text"]) + value)
        elif previous is not None and value[:1] not in ("\n", " ", "\t"):
            out.append(text("\n" + value))
        else:
            out.append(text(value))
    if followed and out and out[-1]["type"] == "text":
        out[-1] = text(_ends_line(out[-1]["text"]))
    return out


def _ends_line(value: str) -> str:
    return value if value[-1:] in ("\n", " ", "\t") else value + "\n"


def image(img: PreparedImage) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": img.data_url()}}


# Bumped whenever the way prompts are laid out changes: every protocol's fingerprint changes too.
LAYOUT_VERSION = "separated-parts-1"


def fingerprint_of(*parts: object) -> str:
    """A short stable hash of a protocol's prompts, schemas and call parameters."""
    blob = json.dumps([LAYOUT_VERSION, *parts], sort_keys=True, default=str).encode()
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
        """A call whose prompt is the prefix shared by a group's candidates (for cache priming).

        ``source`` is the source image as :meth:`prepare` made it; like :meth:`calls`, this only
        places images in the prompt and never reads their pixels (the bodies carry stand-ins).
        """
        return None

    def specialize(self, meta: Meta | None) -> ScoringProtocol:
        """The protocol that scores items with this ``meta`` (one prompt per ImgEdit edit type).

        Runs at intake; raises a :class:`~editjudge.server.errors.RequestError` for a ``meta``
        this protocol cannot score. A specialised protocol has its own ``template_hash``, so
        fingerprints and cache keys tell the variants apart.
        """
        return self

    #: Whether :meth:`prepare` decodes pixels (then it runs in intake's worker threads, never on
    #: the event loop).
    decodes_at_intake: bool = False

    def prepare(self, item: Item) -> Item:
        """The item as this protocol's judge must see it (GEdit resizes the edited image).

        Runs at intake (in a worker thread when :attr:`decodes_at_intake`); raises a
        :class:`~editjudge.server.errors.RequestError` for an item it cannot score.
        """
        return item

    def sampling(self, base: Sampling) -> dict[str, Any]:
        """The sampling parameters this protocol's calls are sent with (for the fingerprint)."""
        return base.as_dict()
