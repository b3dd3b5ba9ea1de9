from __future__ import annotations

import pytest

from editjudge.server.protocols.base import ParseFailure
from editjudge.server.protocols.parsing import parse_scores, score_schema

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
