"""``create_app(protocols=...)`` serves the given protocols instead of the built-ins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import httpx

from editjudge.server.app import create_app
from editjudge.server.config import Settings
from editjudge.server.engine import ChatReply
from editjudge.server.protocols import Call, Item, Outcome, ScoringProtocol
from editjudge.server.protocols.base import image, text
from editjudge.server.protocols.parsing import parse_scores, score_schema
from tests.helpers import fake_engines, item


class OneCall(ScoringProtocol):
    name = "one-call"

    @property
    def template_hash(self) -> str:
        return "test"

    def calls(self, item: Item) -> Sequence[Call]:
        schema = score_schema(["quality"], 0, 10, 0)
        content = [text("rate"), image(item.image), text(item.instruction)]
        return [Call("only", content, {"structured_outputs": {"json": schema}})]

    def combine(self, item: Item, replies: Mapping[str, ChatReply]) -> Outcome:
        raw = replies["only"].content
        scores, _ = parse_scores(raw, ["quality"], 0, 10)
        return Outcome(scores["quality"], scores, None, raw)


async def test_injected_protocol_is_served_and_default() -> None:
    async with fake_engines(1) as engines:
        settings = Settings(backends=[engines[0][1]], protocol="one-call")
        app = create_app(settings, protocols=[OneCall()])
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
                info = (await client.get("/info")).json()
                assert info["protocols"] == ["one-call"]
                assert info["default_protocol"] == "one-call"
                res = (await client.post("/score", json=item(1))).json()
                assert res["status"] == "ok" and res["scores"].keys() == {"quality"}
                assert res["fingerprint"]["protocol"] == "one-call"
                assert len(engines[0][0].requests) == 1  # one call per item, not VIEScore's two
                bad = await client.post("/score", json=item(2, protocol="viescore"))
                assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_protocol"
                schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
                assert schema["ScoreItem"]["properties"]["protocol"]["anyOf"][0]["enum"] == [
                    "one-call"
                ]
