"""Reasoning-first templates and ``samples`` averaged at a temperature (EditScore's practice)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import orjson
import pytest

from editjudge.server.engine import ChatReply
from editjudge.server.images import ImageLimits, prepare_image
from editjudge.server.protocols import (
    Item,
    ParseFailure,
    Sampled,
    Sampling,
    TemplateError,
    load_templates,
)
from editjudge.server.protocols.rubric import RubricProtocol
from tests.helpers import admits, fake_engines, image_bytes, item, router

LIMITS = ImageLimits(10**7, 10**7, frozenset({"PNG"}))
IMG = prepare_image(image_bytes((1, 2, 3)), LIMITS)

REWARD = """
type = "rubric"
fields = ["quality"]
range = [0, 10]
reasoning_first = true
samples = 4
temperature = 0.7
prompt = "Think, then score {instruction}:{image} as JSON, reasoning first."
"""


def rubric(**kw: Any) -> RubricProtocol:
    return RubricProtocol("r", with_source="Rate {instruction}{image}{reason}", fields=["q"], **kw)


def test_reasoning_first_puts_the_reasoning_before_the_scores() -> None:
    (call,) = rubric(reasoning_chars=50, reasoning_first=True).calls(Item("x", IMG))
    assert admits(call.params, '{"reasoning":"the edit is clean","q":7}')
    assert not admits(call.params, '{"q":7,"reasoning":"the edit is clean"}')
    (last,) = rubric(reasoning_chars=50).calls(Item("x", IMG))
    assert admits(last.params, '{"q":7,"reasoning":"ok"}')
    assert (
        rubric(reasoning_chars=50, reasoning_first=True).template_hash
        != rubric(reasoning_chars=50).template_hash
    )
    with pytest.raises(ValueError, match="reasoning first needs a reasoning"):
        rubric(reasoning_first=True)


def test_samples_are_separate_calls_with_consecutive_seeds() -> None:
    sampled = Sampled(rubric(), samples=3, temperature=0.8, top_p=0.9)
    calls = sampled.calls(Item("x", IMG))
    bodies = [c.body("m", Sampling(seed=41)) for c in calls]
    assert [c.name for c in calls] == ["rubric#0", "rubric#1", "rubric#2"]
    assert [b["seed"] for b in bodies] == [41, 42, 43]
    assert {(b["temperature"], b["top_p"]) for b in bodies} == {(0.8, 0.9)}
    assert sampled.sampling(Sampling(seed=41)) == {
        "temperature": 0.8,
        "top_p": 0.9,
        "seed": 41,
        "samples": 3,
    }
    hashes = {Sampled(rubric(), n, 0.8).template_hash for n in (2, 3)}
    assert len(hashes | {Sampled(rubric(), 3, 0.5).template_hash, rubric().template_hash}) == 4


def test_samples_are_averaged_and_their_spread_reported() -> None:
    sampled = Sampled(rubric(reasoning_chars=20), samples=3, temperature=1.0)
    replies = {
        f"rubric#{k}": ChatReply(f'{{"q":{q},"reasoning":"r{k}"}}', "stop", None, None, None)
        for k, q in enumerate((4, 6, 8))
    }
    out = sampled.combine(Item("x", IMG), replies)
    assert out.score == pytest.approx(6.0)
    assert out.scores["q"] == pytest.approx(6.0) and out.scores["overall"] == pytest.approx(6.0)
    assert out.scores["sample_std"] == pytest.approx(statistics.pstdev([4, 6, 8]))
    assert out.reasoning == "#0: r0\n#1: r1\n#2: r2"


def test_one_unparseable_sample_fails_the_item() -> None:
    sampled = Sampled(rubric(), samples=2, temperature=1.0)
    replies = {
        "rubric#0": ChatReply('{"q":4}', "stop", None, None, None),
        "rubric#1": ChatReply("no idea", "stop", None, None, None),
    }
    with pytest.raises(ParseFailure, match="sample 1") as info:
        sampled.combine(Item("x", IMG), replies)
    assert "no idea" in info.value.raw and '{"q":4}' in info.value.raw


def test_several_samples_need_a_temperature() -> None:
    with pytest.raises(ValueError, match="temperature 0"):
        Sampled(rubric(), samples=2, temperature=0.0)


def test_a_template_asks_for_reasoning_first_and_samples(tmp_path: Path) -> None:
    (tmp_path / "reward.toml").write_text(REWARD)
    (protocol,) = load_templates(tmp_path, set(), 0, first_chars=300)
    (first, *_) = protocol.calls(Item("x", IMG))
    # the router asks for no reasoning, but a reasoning-first judge gets one
    assert admits(first.params, '{"reasoning":"' + "x" * 300 + '","quality":3}')
    assert not admits(first.params, '{"quality":3,"reasoning":"x"}')
    assert len(protocol.calls(Item("x", IMG))) == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (REWARD.replace("temperature = 0.7", ""), "temperature 0"),
        ('type = "expected"\nreasoning_first = true\nprompt = "{image}"', "no reasoning"),
        (REWARD.replace("samples = 4", "samples = 0"), "samples"),
        (REWARD + "reasoning_chars = 0\n", "reasoning first needs a reasoning"),
    ],
)
def test_bad_sampling_templates_name_the_fault(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(TemplateError, match=message):
        load_templates(tmp_path, set())


async def test_samples_through_the_router(tmp_path: Path) -> None:
    (tmp_path / "reward.toml").write_text(REWARD)

    def judge(body: dict[str, Any]) -> str:
        return orjson.dumps({"reasoning": "hm", "quality": body["seed"] % 10}).decode()

    async with (
        fake_engines(1, reply=judge) as engines,
        router([u for _, u in engines], templates_dir=tmp_path, seed=5) as client,
    ):
        res = (await client.post("/score", json=item(1, protocol="reward"))).json()
        assert res["status"] == "ok", res
        assert res["score"] == pytest.approx((5 + 6 + 7 + 8) / 4)
        assert res["fingerprint"]["sampling"] == {
            "temperature": 0.7,
            "top_p": 1.0,
            "seed": 5,
            "samples": 4,
        }
        seeds = sorted(b["seed"] for b in engines[0][0].requests)
        assert seeds == [5, 6, 7, 8]
        # the same item again: the same samples, the same score
        again = (await client.post("/score", json=item(1, protocol="reward"))).json()
        assert again["score"] == res["score"]
