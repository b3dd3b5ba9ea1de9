"""The fake engine answers the way a constrained vLLM would: replies the constraint admits."""

from __future__ import annotations

import re

import pytest

from editjudge.server.catalog import build_protocols
from editjudge.server.config import Settings
from editjudge.server.images import ImageLimits, prepare_image
from editjudge.server.protocols import Item, Sampling
from editjudge.server.testing.fake_engine import FakeEngine
from editjudge.server.testing.fake_replies import regex_reply
from tests.helpers import image_bytes

LIMITS = ImageLimits(10**7, 10**7, frozenset({"PNG"}))
SRC = prepare_image(image_bytes((1, 2, 3)), LIMITS)
EDIT = prepare_image(image_bytes((200, 2, 3)), LIMITS)


@pytest.mark.parametrize("source", [SRC, None])
@pytest.mark.parametrize("reasoning", [True, False])
def test_every_builtin_call_gets_a_complete_reply_its_protocol_parses(
    source: object, reasoning: bool
) -> None:
    engine = FakeEngine()
    for protocol in build_protocols(Settings(reasoning=reasoning)):
        item = Item("add a hat", EDIT, source)  # type: ignore[arg-type]
        replies = {}
        for call in protocol.calls(item):
            body = call.body("fake-judge", Sampling())
            completion = engine.completion(body)
            choice = completion["choices"][0]
            assert choice["finish_reason"] == "stop", (protocol.name, call.name)
            replies[call.name] = choice["message"]["content"]
            regex = body.get("structured_outputs", {}).get("regex")
            if regex is not None:
                assert re.fullmatch(regex, replies[call.name])
        assert replies, protocol.name


def test_regex_replies_vary_with_the_seed_and_stay_in_the_pattern() -> None:
    pattern = r'\{"a":(?:10|9|8|7|6|5|4|3|2|1|0),"reasoning":"[ !#-\[\]-~]{0,5}"\}'
    replies = {regex_reply(pattern, seed) for seed in range(40)}
    assert len(replies) > 3
    assert all(re.fullmatch(pattern, r) for r in replies)


def test_a_reply_longer_than_max_tokens_is_cut_with_finish_reason_length() -> None:
    engine = FakeEngine(reply=lambda body: "x" * 50)
    choice = engine.completion({"messages": [], "max_tokens": 10})["choices"][0]
    assert choice["finish_reason"] == "length" and choice["message"]["content"] == "x" * 10
