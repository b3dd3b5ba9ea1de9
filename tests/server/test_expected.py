from __future__ import annotations

import math

import pytest

from editjudge.server.engine import ChatReply
from editjudge.server.images import ImageLimits, prepare_image
from editjudge.server.protocols import ExpectedScore, Item, ParseFailure
from editjudge.server.protocols.expected import digit_distribution, expectation
from tests.helpers import image_bytes

LIMITS = ImageLimits(10**7, 10**7, frozenset({"PNG"}))
SRC = prepare_image(image_bytes((1, 2, 3)), LIMITS)
EDIT = prepare_image(image_bytes((200, 2, 3)), LIMITS)
ITEM = Item("add a hat", EDIT, SRC)


def reply(content: str, top: dict[str, float] | None) -> dict[str, ChatReply]:
    return {"score": ChatReply(content, "length", None if top is None else [top], 100, None)}


def logprobs(probs: dict[str, float], junk: int = 10) -> dict[str, float]:
    """What vLLM reports under a choice constraint: digits, then masked tokens at -9999."""
    top = {tok: math.log(p) for tok, p in probs.items()}
    top.update({f"tok{i}": -9999.0 for i in range(junk)})
    return top


def test_one_call_constrained_to_one_digit_with_top_logprobs() -> None:
    (call,) = ExpectedScore().calls(ITEM)
    assert call.params["max_tokens"] == 2  # the digit, then room to stop (finish_reason "stop")
    assert call.params["logprobs"] is True and call.params["top_logprobs"] >= 10
    assert call.params["structured_outputs"] == {"choice": [str(d) for d in range(10)]}
    types = [p["type"] for p in call.content]
    assert types == ["text", "image_url", "text", "image_url", "text"]
    assert call.content[1]["image_url"]["url"] == SRC.data_url()
    assert call.content[3]["image_url"]["url"] == EDIT.data_url()
    assert "add a hat" in call.content[2]["text"]


def test_without_source_there_is_one_image() -> None:
    (call,) = ExpectedScore().calls(Item("a red car", EDIT, None))
    assert [p["type"] for p in call.content] == ["text", "image_url", "text"]


def test_prefix_is_the_candidate_prompt_up_to_the_edited_image() -> None:
    prefix = ExpectedScore().prefix(SRC, "add a hat")
    assert prefix is not None and prefix.params == {"max_tokens": 1}
    (call,) = ExpectedScore().calls(ITEM)
    assert call.content[: len(prefix.content)] == prefix.content
    assert call.content[len(prefix.content)]["image_url"]["url"] == EDIT.data_url()


def test_expected_score_is_the_probability_weighted_mean_rescaled() -> None:
    out = ExpectedScore().combine(ITEM, reply("9", logprobs({"9": 0.5, "6": 0.25, "3": 0.25})))
    mean = 0.5 * 9 + 0.25 * 6 + 0.25 * 3
    assert out.scores["expected"] == pytest.approx(mean)
    assert out.score == pytest.approx(mean * 10 / 9)
    entropy = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert out.scores["entropy"] == pytest.approx(entropy)
    assert out.scores["valid_mass"] == pytest.approx(1.0)
    assert out.scores["answer"] == 9.0
    assert out.raw == "9"


def test_extremes_map_to_0_and_10() -> None:
    assert ExpectedScore().combine(ITEM, reply("0", {"0": 0.0})).score == 0.0
    top = ExpectedScore().combine(ITEM, reply("9", {"9": 0.0}))
    assert top.score == pytest.approx(10.0) and top.scores["entropy"] == 0.0


def test_partial_mass_is_renormalised_and_reported() -> None:
    top = {"7": math.log(0.3), "8": math.log(0.1), "hello": math.log(0.6)}
    out = ExpectedScore().combine(ITEM, reply("7", top))
    assert out.scores["valid_mass"] == pytest.approx(0.4)
    assert out.scores["expected"] == pytest.approx((0.3 * 7 + 0.1 * 8) / 0.4)
    assert out.scores["answer"] == 7.0


@pytest.mark.parametrize("text", ["hello", "", "7.5", "10", "7 out of 9", "seven"])
def test_a_reply_that_is_not_one_digit_is_an_error_even_with_digit_logprobs(text: str) -> None:
    """An engine that ignored the choice constraint: its logprobs are about another answer."""
    top = {"7": math.log(0.3), "8": math.log(0.1), "hello": math.log(0.6)}
    with pytest.raises(ParseFailure, match="single digit") as info:
        ExpectedScore().combine(ITEM, reply(text, top))
    assert info.value.raw == text and info.value.code == "unparseable_reply"


def test_no_digit_mass_is_an_error_never_a_guess() -> None:
    with pytest.raises(ParseFailure) as info:
        ExpectedScore().combine(ITEM, reply("5", {"x": -0.1, "y": -3.0}))
    assert "no probability mass" in info.value.message and info.value.raw.startswith("5")
    with pytest.raises(ParseFailure):  # only masked digits
        ExpectedScore().combine(ITEM, reply("5", {"5": -9999.0, "4": -9999.0}))
    with pytest.raises(ParseFailure, match="top_logprobs"):
        ExpectedScore().combine(ITEM, reply("5", None))


def test_digit_tokens_are_compared_stripped_and_summed() -> None:
    dist = digit_distribution({" 5": math.log(0.2), "5": math.log(0.3), "55": 0.0, "x": 0.0})
    assert dist == {5: pytest.approx(0.5)}
    assert digit_distribution({"3": float("nan")}) == {}


def test_expectation_of_a_uniform_distribution() -> None:
    mean, entropy = expectation({d: 0.1 for d in range(10)})
    assert mean == pytest.approx(4.5) and entropy == pytest.approx(math.log(10))


def test_template_hash_changes_with_the_prompt() -> None:
    a = ExpectedScore()
    b = ExpectedScore(with_source="Judge {instruction}:{image} digit?", without_source=None)
    assert a.template_hash == ExpectedScore().template_hash != b.template_hash
