"""EDITJUDGE_CONSTRAIN_REPLIES=false: the same calls without vLLM's structured outputs."""

from __future__ import annotations

import json
from typing import Any

from editjudge.server.catalog import build_protocols
from editjudge.server.config import Settings
from editjudge.server.images import PreparedImage
from editjudge.server.protocols import Call, Item, ScoringProtocol, Unconstrained
from tests.helpers import fake_engines, item, router

SC = {"instruction_following": 8, "over_editing": 6, "reasoning": "kept the dog"}
PQ = {"naturalness": 7, "artifacts": 9, "reasoning": "clean"}


def prose_judge(body: dict[str, Any]) -> str:
    """A judge that writes its JSON inside prose and a code fence, as trained judges often do."""
    text = json.dumps(body["messages"])
    reply = SC if "instruction_following" in text else PQ
    return f"Here is my verdict:\n```json\n{json.dumps(reply, indent=2)}\n```"


def test_every_served_protocol_loses_its_constraint_and_nothing_else() -> None:
    constrained = {p.name: p for p in build_protocols(Settings())}
    free = {p.name: p for p in build_protocols(Settings(constrain_replies=False))}
    assert constrained.keys() == free.keys()
    assert any("structured_outputs" in c.params for p in constrained.values() for c in calls(p))
    for name, protocol in free.items():
        assert isinstance(protocol, Unconstrained)
        assert protocol.template_hash != constrained[name].template_hash  # no shared cache entry
        for with_, without in zip(calls(constrained[name]), calls(protocol), strict=True):
            expected = {k: v for k, v in with_.params.items() if k != "structured_outputs"}
            assert without.params == expected  # max_tokens and the rest kept
            assert (without.name, without.content) == (with_.name, with_.content)


def calls(protocol: ScoringProtocol) -> list[Call]:
    image = PreparedImage(None, "image/png", 8, 8, "", "AAAA")
    return list(protocol.calls(Item("make it blue", image, image)))


async def test_free_replies_are_parsed_and_the_engine_sees_no_constraint() -> None:
    async with (
        fake_engines(1, reply=prose_judge) as engines,
        router([u for _, u in engines], constrain_replies=False) as client,
    ):
        res = (await client.post("/score", json=item(1))).json()
        assert res["status"] == "ok", res
        assert res["scores"]["instruction_following"] == 8 and res["scores"]["artifacts"] == 9
        bodies = engines[0][0].requests
        assert len(bodies) == 2 and not any("structured_outputs" in b for b in bodies)
        assert all(isinstance(b["max_tokens"], int) for b in bodies)


async def test_an_unparseable_free_reply_is_an_error_item_with_its_text() -> None:
    async with (
        fake_engines(1, reply=lambda body: "The edit looks fine to me.") as engines,
        router([u for _, u in engines], constrain_replies=False) as client,
    ):
        res = (await client.post("/score", json=item(2))).json()
        assert res["status"] == "error" and res["score"] is None
        assert res["error"]["code"] == "unparseable_reply"
        assert "The edit looks fine to me." in res["raw"]
