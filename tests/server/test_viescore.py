from __future__ import annotations

import math

import pytest

from editjudge.server.engine import ChatReply
from editjudge.server.images import ImageLimits, prepare_image
from editjudge.server.protocols import Item, ParseFailure, Sampling, VIEScore
from tests.helpers import admits, image_bytes

LIMITS = ImageLimits(10**7, 10**7, frozenset({"PNG"}))
SRC = prepare_image(image_bytes((1, 2, 3)), LIMITS)
EDIT = prepare_image(image_bytes((200, 2, 3)), LIMITS)


def reply(content: str) -> ChatReply:
    return ChatReply(content, "stop", None, 100, None)


def test_sc_call_orders_content_for_prefix_reuse() -> None:
    sc, pq = VIEScore().calls(Item("add a hat", EDIT, SRC))
    kinds = [(p["type"], p.get("text", p.get("image_url", {}).get("url"))) for p in sc.content]
    assert [k for k, _ in kinds] == ["text", "image_url", "text", "image_url", "text"]
    assert kinds[1][1] == SRC.data_url()  # source before the instruction
    assert "add a hat" in str(kinds[2][1])
    assert kinds[3][1] == EDIT.data_url()  # edited image after the instruction
    assert [p["type"] for p in pq.content] == ["text", "image_url", "text"]


def test_text_never_runs_into_the_next_part() -> None:
    """Chat templates concatenate parts: every boundary must already be a line break."""
    sc, pq = VIEScore().calls(Item("make the sky purple", EDIT, SRC))
    for call in (sc, pq):
        rendered = "".join(p.get("text", "<img>") for p in call.content)
        assert "<img><img>" not in rendered
        for a, b in zip(call.content, call.content[1:], strict=False):
            if a["type"] == "text":
                assert a["text"].endswith("\n"), a["text"]
            if b["type"] == "text":
                assert b["text"].startswith("\n"), b["text"]
    text = sc.content[0]["text"]
    assert "failed.\nOriginal image:\n" in text
    assert "Editing instruction: make the sky purple\nEdited image:\n" in sc.content[2]["text"]


def test_calls_ask_for_compact_deterministic_json() -> None:
    sc, pq = VIEScore().calls(Item("add a hat", EDIT, SRC))
    body = sc.body("judge", Sampling(seed=7))
    assert body["temperature"] == 0 and body["seed"] == 7 and body["model"] == "judge"
    assert "guided_json" not in body and "json" not in body["structured_outputs"]
    longest = '{"instruction_following":10,"over_editing":10,"reasoning":"' + "x" * 240 + '"}'
    # max_tokens, not the expression, bounds the closing reasoning: 240 characters at two per
    # token after the scores at one per character, and the end token.
    assert admits(body, longest) and body["max_tokens"] == len(longest) - 240 + 120 + 1
    assert admits(body, '{"instruction_following":0,"over_editing":7,"reasoning":""}')
    # Whitespace between tokens is what looped to max_tokens: no spelling but the compact one.
    assert not admits(body, '{"instruction_following": 0,"over_editing":7,"reasoning":""}')
    assert not admits(body, '{"instruction_following":0,"over_editing":7,"reasoning":"" }')
    assert not admits(body, '{"instruction_following":0,"over_editing":7,"reasoning":"a\\"b"}')
    assert admits(pq.params, '{"naturalness":3,"artifacts":4,"reasoning":"blurry"}')


def test_combine_is_geometric_mean_of_minimums() -> None:
    item = Item("add a hat", EDIT, SRC)
    out = VIEScore().combine(
        item,
        {
            "sc": reply('{"instruction_following": 8, "over_editing": 6, "reasoning": "ok"}'),
            "pq": reply('{"naturalness": 9, "artifacts": 4, "reasoning": "blurry"}'),
        },
    )
    assert out.scores["semantic_consistency"] == 6 and out.scores["perceptual_quality"] == 4
    assert out.score == pytest.approx(math.sqrt(6 * 4))
    assert out.reasoning == "SC: ok PQ: blurry"


def test_without_source_only_instruction_following_counts() -> None:
    item = Item("a cat on a mat", EDIT, None)
    sc, _ = VIEScore().calls(item)
    assert sum(p["type"] == "image_url" for p in sc.content) == 1
    out = VIEScore().combine(
        item,
        {
            "sc": reply('{"instruction_following": 9}'),
            "pq": reply('{"naturalness": 9, "artifacts": 9}'),
        },
    )
    assert out.score == pytest.approx(9.0)


def test_missing_over_editing_with_source_is_an_error_not_a_guess() -> None:
    with pytest.raises(ParseFailure):
        VIEScore().combine(
            Item("x", EDIT, SRC),
            {
                "sc": reply('{"instruction_following": 9}'),
                "pq": reply('{"naturalness": 9, "artifacts": 9}'),
            },
        )


def test_template_hash_tracks_prompt_changes() -> None:
    assert VIEScore(240).template_hash == VIEScore(240).template_hash
    assert VIEScore(240).template_hash != VIEScore(0).template_hash
