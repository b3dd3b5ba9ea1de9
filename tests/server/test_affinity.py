"""The ``affinity`` routing policy through the app: source placement and bounded load, on fakes."""

from __future__ import annotations

import collections

from editjudge.server.images import ImageLimits, prepare_image
from editjudge.server.policy import rendezvous_order
from tests.helpers import b64, fake_engines, image_bytes, router

LIMITS = ImageLimits(10**8, 10**8, frozenset({"PNG"}))


def source_png(s: int) -> bytes:
    return image_bytes((s * 40 % 256, 30, 90), size=(40 + s, 40))


def digest(data: bytes) -> str:
    return prepare_image(data, LIMITS).digest


def items_for(sources: int, per_source: int) -> list[dict[str, object]]:
    return [
        {
            "id": f"s{s}-c{c}",
            "image": b64(image_bytes((c * 30 % 256, s * 20 % 256, 7))),
            "source_image": b64(source_png(s)),
            "instruction": f"edit {c}",
        }
        for s in range(sources)
        for c in range(per_source)
    ]


async def test_items_of_one_source_land_on_its_rendezvous_engine() -> None:
    async with (
        fake_engines(3, latency_s=0.005) as engines,
        router([u for _, u in engines], routing_policy="affinity") as client,
    ):
        urls = [u for _, u in engines]
        placed: dict[int, set[str]] = collections.defaultdict(set)
        # one item at a time: load stays near zero, so placement is pure rendezvous hashing
        for s in range(8):
            for entry in items_for(8, 3)[s * 3 : s * 3 + 3]:
                placed[s].add((await client.post("/score", json=entry)).json()["backend"])
        for s in range(8):
            assert placed[s] == {rendezvous_order(urls, digest(source_png(s)))[0]}
        assert len(set().union(*placed.values())) >= 2  # different sources spread out


async def test_group_goes_to_the_sources_engine_under_affinity() -> None:
    async with (
        fake_engines(3) as engines,
        router([u for _, u in engines], routing_policy="affinity") as client,
    ):
        urls = [u for _, u in engines]
        for s in range(4):
            body = {
                "source_image": b64(source_png(s)),
                "instruction": "x",
                "images": [b64(image_bytes((i, 1, 1))) for i in range(3)],
            }
            result = (await client.post("/score/group", json=body)).json()
            assert result["backend"] == rendezvous_order(urls, digest(source_png(s)))[0]


async def test_bounded_load_spills_a_hot_source_to_other_engines() -> None:
    async with (
        fake_engines(3, latency_s=0.05) as engines,
        router([u for _, u in engines], routing_policy="affinity", affinity_epsilon=0.25) as c,
    ):
        r = await c.post("/score", json={"items": items_for(1, 24)})
        counts = collections.Counter(x["backend"] for x in r.json()["results"])
        preferred = rendezvous_order([u for _, u in engines], digest(source_png(0)))[0]
        assert len(counts) == 3, counts  # spilled to every engine
        assert counts[preferred] == max(counts.values()), counts


async def test_without_the_bound_a_hot_source_stays_on_one_engine() -> None:
    # A fixed window of 256 requests: the engine's own window is a separate limit from the
    # affinity bound under test (24 items x 2 calls would overflow the adaptive start window).
    async with (
        fake_engines(3, latency_s=0.05) as engines,
        router(
            [u for _, u in engines],
            routing_policy="affinity",
            affinity_epsilon=100.0,
            in_flight_control="fixed",
        ) as c,
    ):
        r = await c.post("/score", json={"items": items_for(1, 24)})
        backends = {x["backend"] for x in r.json()["results"]}
        assert backends == {rendezvous_order([u for _, u in engines], digest(source_png(0)))[0]}


async def test_least_outstanding_spreads_one_source_instead() -> None:
    async with fake_engines(3, latency_s=0.05) as engines, router([u for _, u in engines]) as c:
        r = await c.post("/score", json={"items": items_for(1, 24)})
        assert len({x["backend"] for x in r.json()["results"]}) == 3
