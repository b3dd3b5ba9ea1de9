from __future__ import annotations

from pathlib import Path

import pytest

from editjudge.server.engine import ChatReply
from editjudge.server.images import ImageLimits, prepare_image
from editjudge.server.protocols import (
    ExpectedScore,
    Item,
    ParseFailure,
    RubricProtocol,
    TemplateError,
    edit_rubric,
    load_templates,
)
from editjudge.server.protocols.template import PromptTemplate, TemplateSyntaxError
from tests.helpers import admits, image_bytes

LIMITS = ImageLimits(10**7, 10**7, frozenset({"PNG"}))
SRC = prepare_image(image_bytes((1, 2, 3)), LIMITS)
EDIT = prepare_image(image_bytes((200, 2, 3)), LIMITS)

RUBRIC = '''
type = "rubric"
description = "two criteria"
fields = ["faithfulness", "beauty"]
fields_without_source = ["beauty"]
range = [1, 5]
combine = "min"
prompt = """Rate it. Original:{source}
Instruction: {instruction}. Edit:{image}
JSON please{reason}."""
prompt_without_source = "Rate {instruction}:{image}"
'''
EXPECTED = """
type = "expected"
prompt = "Is this {instruction}? {image} One digit."
"""


def reply(content: str) -> ChatReply:
    return ChatReply(content, "stop", None, 100, None)


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


# --- PromptTemplate ---------------------------------------------------------------------------


def test_template_splits_at_images_and_substitutes_the_instruction() -> None:
    t = PromptTemplate.parse("A {instruction}{source} B {{literal}} {instruction}{image}C")
    parts = t.render("hat", EDIT, SRC)
    # Text never runs into an image: a newline separates them unless whitespace already does.
    assert parts == [
        {"type": "text", "text": "A hat\n"},
        {"type": "image_url", "image_url": {"url": SRC.data_url()}},
        {"type": "text", "text": " B {literal} hat\n"},
        {"type": "image_url", "image_url": {"url": EDIT.data_url()}},
        {"type": "text", "text": "\nC"},
    ]
    assert t.prefix("hat", SRC) == parts[:3]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("no image here {instruction}", "{image} exactly once"),
        ("{image}{image}", "{image} exactly once"),
        ("{source}{source}{image}", "at most once"),
        ("{image} {score}", "unknown placeholder {score}"),
        ("{image} {0}", "unknown placeholder"),
        ("{image:>10}", "no format spec"),
        ("{image!r}", "no format spec"),
        ("{image", "malformed"),
        ("{image} }", "malformed"),
    ],
)
def test_bad_templates_are_refused_with_a_reason(template: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=message.replace("{", r"\{").replace("}", r"\}")):
        PromptTemplate.parse(template)


def test_source_rules_for_a_pair() -> None:
    with pytest.raises(TemplateSyntaxError, match="add a prompt_without_source"):
        PromptTemplate.pair("{source}{image}", None)
    with pytest.raises(TemplateSyntaxError, match="not needed"):
        PromptTemplate.pair("{image}", "{image}")
    with pytest.raises(TemplateSyntaxError, match="must not use"):
        PromptTemplate.pair("{source}{image}", "{source}{image}")
    one, other = PromptTemplate.pair("{instruction}{image}", None)
    assert one is other


# --- edit-rubric (the generic rubric once served as imgedit) -----------------------------------


def test_edit_rubric_asks_three_1_to_5_criteria_with_source_first() -> None:
    (call,) = edit_rubric().calls(Item("add a hat", EDIT, SRC))
    good = '{"instruction_adherence":5,"editing_quality":1,"detail_preservation":3}'
    assert admits(call.params, good)
    for bad in (
        good.replace(":5", ":6"),
        good.replace(":1", ":0"),
        good.replace(",", ", "),  # compact JSON only
        '{"instruction_adherence":5,"editing_quality":1}',
    ):
        assert not admits(call.params, bad), bad
    assert call.params["max_tokens"] > len(good)
    urls = [p["image_url"]["url"] for p in call.content if p["type"] == "image_url"]
    assert urls == [SRC.data_url(), EDIT.data_url()]


def test_edit_rubric_maps_the_1_to_5_mean_onto_0_to_10() -> None:
    raw = '{"instruction_adherence": 5, "editing_quality": 3, "detail_preservation": 4}'
    out = edit_rubric().combine(Item("x", EDIT, SRC), {"rubric": reply(raw)})
    assert out.scores["overall"] == pytest.approx(4.0)
    assert out.score == pytest.approx(7.5)
    lowest = '{"instruction_adherence": 1, "editing_quality": 1, "detail_preservation": 1}'
    assert edit_rubric().combine(Item("x", EDIT, SRC), {"rubric": reply(lowest)}).score == 0.0


def test_edit_rubric_without_source_drops_detail_preservation() -> None:
    item = Item("x", EDIT, None)
    (call,) = edit_rubric().calls(item)
    assert admits(call.params, '{"instruction_adherence":5,"editing_quality":5}')
    assert "detail_preservation" not in call.params["structured_outputs"]["regex"]
    out = edit_rubric().combine(
        item, {"rubric": reply('{"instruction_adherence": 5, "editing_quality": 5}')}
    )
    assert out.score == pytest.approx(10.0)


def test_edit_rubric_out_of_range_is_an_error() -> None:
    raw = '{"instruction_adherence": 0, "editing_quality": 3, "detail_preservation": 4}'
    with pytest.raises(ParseFailure):
        edit_rubric().combine(Item("x", EDIT, SRC), {"rubric": reply(raw)})


def test_reasoning_is_requested_only_when_enabled() -> None:
    (quiet,) = edit_rubric(0).calls(Item("x", EDIT, SRC))
    (chatty,) = edit_rubric(200).calls(Item("x", EDIT, SRC))
    scores = '"instruction_adherence":5,"editing_quality":1,"detail_preservation":3'
    assert admits(quiet.params, "{" + scores + "}")
    assert not admits(quiet.params, "{" + scores + ',"reasoning":"ok"}')
    assert admits(chatty.params, "{" + scores + ',"reasoning":"a short reason"}')
    # The reasoning's length is bounded by max_tokens, not by the regex (a bounded repeat makes
    # xgrammar's masks the engine's bottleneck): the scores at a token per character, 200
    # characters of reasoning at two per token, the end token; a longer one is cut and closed.
    scores_part = "{" + scores + ',"reasoning":"' + '"}'
    assert chatty.params["max_tokens"] == len(scores_part) + 100 + 1
    assert (
        "reasoning" in chatty.content[-1]["text"] and "reasoning" not in quiet.content[-1]["text"]
    )
    assert edit_rubric(0).template_hash != edit_rubric(200).template_hash


# --- template files ---------------------------------------------------------------------------


def test_loads_rubric_and_expected_templates_by_file_name(tmp_path: Path) -> None:
    write(tmp_path, "pretty.toml", RUBRIC)
    write(tmp_path, "quick.toml", EXPECTED)
    write(tmp_path, "README.md", "not a template")
    protocols = {p.name: p for p in load_templates(tmp_path, {"viescore"}, reasoning_chars=0)}
    assert set(protocols) == {"pretty", "quick"}
    pretty, quick = protocols["pretty"], protocols["quick"]
    assert isinstance(pretty, RubricProtocol) and isinstance(quick, ExpectedScore)
    out = pretty.combine(
        Item("x", EDIT, SRC), {"rubric": reply('{"faithfulness": 2, "beauty": 5}')}
    )
    assert out.scores["overall"] == 2 and out.score == pytest.approx(2.5)  # min, 1-5 -> 0-10
    (no_src,) = pretty.calls(Item("a cat", EDIT, None))
    assert no_src.content[0]["text"] == "Rate a cat:\n"
    assert admits(no_src.params, '{"beauty":5}')
    assert not admits(no_src.params, '{"faithfulness":2,"beauty":5}')
    (q,) = quick.calls(Item("a cat", EDIT, SRC))  # no {source}: one prompt for every item
    assert [p["type"] for p in q.content] == ["text", "image_url", "text"]


def test_template_hash_follows_the_file(tmp_path: Path) -> None:
    write(tmp_path, "pretty.toml", RUBRIC)
    before = load_templates(tmp_path, set())[0].template_hash
    write(tmp_path, "pretty.toml", RUBRIC.replace("Rate it.", "Rate it carefully."))
    assert load_templates(tmp_path, set())[0].template_hash != before


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.toml", "prompt = 'unterminated", "not valid TOML"),
        ("bad.toml", RUBRIC.replace("{image}", "{imgae}"), "unknown placeholder {imgae}"),
        ("bad.toml", RUBRIC.replace('combine = "min"', 'combine = "max"'), "combine"),
        ("bad.toml", RUBRIC + "\nextra_key = 1\n", "extra_key"),
        ("bad.toml", RUBRIC.replace("range = [1, 5]", "range = [5, 1]"), "lo < hi"),
        ("bad.toml", 'prompt = "{source}{image}"\nfields = ["a"]', "prompt_without_source"),
        ("bad.toml", 'prompt = "{image}"', "needs 'fields'"),
        ("bad.toml", 'prompt = "{image}"\nfields = ["Bad Name"]', "field names"),
        ("bad.toml", EXPECTED + 'fields = ["a"]\n', "type 'rubric'"),
        ("bad.toml", 'type = "pairwise"\nprompt = "{image}"', "type: Input should be 'rubric'"),
        ("viescore.toml", EXPECTED, "built-in"),
        ("Bad Name.toml", EXPECTED, "must match"),
    ],
)
def test_broken_templates_name_the_file_and_fault(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    write(tmp_path, name, text)
    with pytest.raises(TemplateError) as info:
        load_templates(tmp_path, {"viescore", "expected", "edit-rubric"})
    assert name in str(info.value)
    assert message in str(info.value)


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="does not exist"):
        load_templates(tmp_path / "nope", set())


def test_rubric_hash_covers_the_fields_scored_without_a_source() -> None:
    from editjudge.server.protocols.rubric import RubricProtocol

    def make(without: list[str]) -> RubricProtocol:
        return RubricProtocol(
            name="r",
            description="",
            with_source="{source} {instruction} {image} {reason}",
            without_source="{instruction} {image} {reason}",
            fields=["a", "b"],
            fields_without_source=without,
            lo=1,
            hi=5,
            combine="mean",
        )

    assert make(["a"]).template_hash != make(["b"]).template_hash
