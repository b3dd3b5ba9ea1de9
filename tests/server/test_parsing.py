from __future__ import annotations

import re

import pytest

from editjudge.server.protocols.base import ParseFailure
from editjudge.server.protocols.parsing import (
    ScoreFormat,
    close_cut_reasoning,
    parse_scores,
    score_schema,
)

F = ("instruction_following", "over_editing")


def test_well_formed_json() -> None:
    scores, reason = parse_scores(
        '{"instruction_following": 7, "over_editing": 9, "reasoning": "hat added"}', F, 0, 10
    )
    assert scores == {"instruction_following": 7.0, "over_editing": 9.0}
    assert reason == "hat added"


def test_reply_cut_off_inside_reasoning_still_yields_scores() -> None:
    raw = '{"instruction_following":4,"over_editing":8,"reasoning":"the hat is'
    scores, reason = parse_scores(raw, F, 0, 10)
    assert scores == {"instruction_following": 4.0, "over_editing": 8.0}
    assert reason is None


def test_viescore_list_shape_and_code_fence() -> None:
    scores, reason = parse_scores('```json\n{"score": [3, 6], "reasoning": "x"}\n```', F, 0, 10)
    assert scores == {"instruction_following": 3.0, "over_editing": 6.0}
    assert reason == "x"


def test_json_embedded_in_prose() -> None:
    scores, _ = parse_scores(
        'Sure! {"instruction_following": 2, "over_editing": 10} done', F, 0, 10
    )
    assert scores["over_editing"] == 10.0


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "I think it is a good edit",
        '{"instruction_following": 7}',  # a field missing
        '{"instruction_following": 11, "over_editing": 3}',  # out of range
        '{"instruction_following": -1, "over_editing": 3}',
        '{"instruction_following": true, "over_editing": 3}',  # bool is not a score
        '{"instruction_following": "7", "over_editing": 3}',  # string is not a score
        '{"score": [3]}',  # list of the wrong length
        "[7, 8]",
    ],
)
def test_no_valid_score_fails_and_keeps_raw(raw: str) -> None:
    with pytest.raises(ParseFailure) as info:
        parse_scores(raw, F, 0, 10)
    assert info.value.raw == raw


def test_schema_bounds_and_reasoning_last() -> None:
    schema = score_schema(F, 0, 10, 100)
    assert list(schema["properties"]) == [*F, "reasoning"]
    assert schema["properties"]["over_editing"] == {"type": "integer", "minimum": 0, "maximum": 10}
    assert schema["properties"]["reasoning"]["maxLength"] == 100
    assert schema["additionalProperties"] is False
    assert "reasoning" not in score_schema(F, 0, 10, 0)["properties"]


def test_a_closing_reasoning_is_open_ended_and_a_leading_one_bounded() -> None:
    """xgrammar's masks for a bounded repeat cost ~40x those of '*': the reasoning that ends a reply
    is left open (max_tokens bounds it); one that comes first keeps its bound, since the scores
    after it must fit."""
    last = ScoreFormat(F, 0, 10, 12).regex()
    first = ScoreFormat(F, 0, 10, 12, reasoning_first=True).regex()
    assert last.endswith('"reasoning":"[ !#-\\[\\]-~]*"\\}') and "{0," not in last
    assert '"reasoning":"[ !#-\\[\\]-~]{0,12}"' in first
    long_reasoning = '{"instruction_following":7,"over_editing":3,"reasoning":"' + "a" * 500 + '"}'
    assert re.fullmatch(last, long_reasoning) and not re.fullmatch(first, long_reasoning)
    # The budget: a bounded reply at a token per character; the open-ended reasoning at two
    # characters per token (a reasoning of 12 characters needs at most 6 more tokens).
    bounded = ScoreFormat(F, 0, 10, 12, True)
    assert bounded.max_tokens() == bounded.max_chars() + 1
    assert ScoreFormat(F, 0, 10, 12).max_tokens() == bounded.max_chars() - 12 + 6 + 1
    assert (
        ScoreFormat(F, 0, 10, 0).max_tokens()
        == len('{"instruction_following":10,"over_editing":10}') + 1
    )


@pytest.mark.parametrize(
    ("content", "closed"),
    [
        ('{"a":7,"b":-1,"reasoning":"the hat is', '{"a":7,"b":-1,"reasoning":"the hat is"}'),
        ('{"a":7,"reasoning":"', '{"a":7,"reasoning":""}'),
        ('{"instruction_following"' + " " * 50, None),  # padded: no score at all
        ('{"a":7,"b":', None),  # cut among the scores
        ('{"reasoning":"first, then","a":', None),  # reasoning first: scores lost
        ('{"a": 7, "reasoning": "free text', None),  # not the constrained spelling
        ('{"a":7,"reasoning":"quoted \\"', None),  # the constraint allows no backslash
        ('{"a":7,"reasoning":"done"}', None),  # complete, nothing to close
    ],
)
def test_close_cut_reasoning(content: str, closed: str | None) -> None:
    assert close_cut_reasoning(content) == closed
