from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from editjudge.server.cache import MemoryStore, ScoreCache, SqliteStore, make_cache
from editjudge.server.config import Settings
from editjudge.server.images import ImageLimits, prepare_image
from editjudge.server.protocols import Item
from editjudge.server.schemas import Fingerprint, ScoreResult
from tests.helpers import image_bytes

LIMITS = ImageLimits(10**7, 10**7, frozenset({"PNG"}))
SRC = prepare_image(image_bytes((1, 2, 3)), LIMITS)
EDIT = prepare_image(image_bytes((200, 2, 3)), LIMITS)
FP = Fingerprint(
    model="m",
    vllm_version="0.1",
    protocol="viescore",
    template_hash="abc",
    sampling={"temperature": 0.0, "top_p": 1.0, "seed": 0},
    image_policy="passthrough",
)


def ok(score: float = 7.0, item_id: str | None = "a") -> ScoreResult:
    return ScoreResult(id=item_id, status="ok", score=score, backend="http://e0", latency_ms=50.0)


def test_key_depends_on_everything_that_determines_a_score() -> None:
    base = ScoreCache.key(FP, Item("add a hat", EDIT, SRC, id="x"))
    assert base == ScoreCache.key(FP, Item("add a hat", EDIT, SRC, id="other id"))
    variants = [
        ScoreCache.key(FP, Item("add a cap", EDIT, SRC)),
        ScoreCache.key(FP, Item("add a hat", SRC, EDIT)),
        ScoreCache.key(FP, Item("add a hat", EDIT, None)),
        ScoreCache.key(FP.model_copy(update={"model": "m2"}), Item("add a hat", EDIT, SRC)),
        ScoreCache.key(FP.model_copy(update={"template_hash": "x"}), Item("add a hat", EDIT, SRC)),
        ScoreCache.key(
            FP.model_copy(update={"protocol": "expected"}), Item("add a hat", EDIT, SRC)
        ),
        ScoreCache.key(
            FP.model_copy(update={"sampling": {"temperature": 0.0, "top_p": 1.0, "seed": 1}}),
            Item("add a hat", EDIT, SRC),
        ),
        ScoreCache.key(
            FP.model_copy(update={"image_policy": "max_pixels=9"}), Item("add a hat", EDIT, SRC)
        ),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_memory_store_evicts_least_recently_used() -> None:
    store = MemoryStore(2)
    store.put("a", b"1")
    store.put("b", b"2")
    assert store.get("a") == b"1"  # a is now newer than b
    store.put("c", b"3")
    assert store.get("b") is None and store.get("a") == b"1" and store.get("c") == b"3"
    assert len(store) == 2


def test_sqlite_store_persists_and_trims(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.sqlite"
    store = SqliteStore(path, max_items=3)
    for i in range(5):
        store.put(f"k{i}", str(i).encode())
    assert len(store) == 3
    assert store.get("k0") is None and store.get("k4") == b"4"
    store.close()
    again = SqliteStore(path, max_items=3)
    assert again.get("k4") == b"4"
    again.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_hits_are_marked_and_carry_the_callers_id(kind: str, tmp_path: Path) -> None:
    hits: list[int] = []
    settings = Settings(score_cache=kind, score_cache_path=tmp_path / "c.sqlite")
    cache = make_cache(settings, on_hit=lambda: hits.append(1))
    assert cache is not None
    calls = 0

    async def compute() -> ScoreResult:
        nonlocal calls
        calls += 1
        return ok(item_id="first")

    first = await cache.get_or_compute("k", "first", compute)
    second = await cache.get_or_compute("k", "second", compute)
    assert calls == 1 and hits == [1]
    assert first.cache_hit is False and second.cache_hit is True
    assert second.id == "second" and second.score == first.score == 7.0
    assert second.latency_ms < first.latency_ms
    cache.close()


async def test_a_groups_lookups_and_stores_take_one_trip_to_the_sqlite_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ScoreCache(SqliteStore(tmp_path / "c.sqlite", 100))
    trips = 0
    to_thread = asyncio.to_thread

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal trips
        trips += 1
        return await to_thread(*args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    failed = ScoreResult(id="c", status="error")
    await cache.put_many([("a", ok(6.0, "a")), ("b", ok(8.0, "b")), ("c", failed)])
    assert trips == 1
    found = await cache.get_many([("b", "x"), ("missing", "y"), ("a", "z"), ("c", "w")])
    assert trips == 2
    assert [r.score if r else None for r in found] == [8.0, None, 6.0, None]  # errors not kept
    assert [r.id for r in found if r] == ["x", "z"] and all(r.cache_hit for r in found if r)
    cache.close()


async def test_errors_are_not_cached() -> None:
    cache = ScoreCache(MemoryStore(10))
    calls = 0

    async def failing() -> ScoreResult:
        nonlocal calls
        calls += 1
        return ScoreResult(id="a", status="error")

    await cache.get_or_compute("k", "a", failing)
    await cache.get_or_compute("k", "a", failing)
    assert calls == 2 and len(cache.store) == 0  # type: ignore[arg-type]


async def test_identical_requests_in_flight_are_computed_once() -> None:
    cache = ScoreCache(MemoryStore(10))
    release = asyncio.Event()
    calls = 0

    async def slow() -> ScoreResult:
        nonlocal calls
        calls += 1
        await release.wait()
        return ok()

    tasks = [asyncio.create_task(cache.get_or_compute("k", f"id{i}", slow)) for i in range(5)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert [r.id for r in results] == [f"id{i}" for i in range(5)]
    assert [r.cache_hit for r in results] == [False, True, True, True, True]


async def test_followers_take_over_when_the_leader_is_cancelled() -> None:
    cache = ScoreCache(MemoryStore(10))
    started = asyncio.Event()
    calls = 0

    async def compute() -> ScoreResult:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(0.05)
        return ok()

    leader = asyncio.create_task(cache.get_or_compute("k", "lead", compute))
    await started.wait()
    follower = asyncio.create_task(cache.get_or_compute("k", "follow", compute))
    await asyncio.sleep(0)
    leader.cancel()
    result = await follower
    assert result.status == "ok" and result.id == "follow" and calls == 2
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_followers_share_an_error_result_without_a_hit() -> None:
    cache = ScoreCache(MemoryStore(10))
    release = asyncio.Event()

    async def failing() -> ScoreResult:
        await release.wait()
        return ScoreResult(id="a", status="error")

    tasks = [asyncio.create_task(cache.get_or_compute("k", f"id{i}", failing)) for i in range(3)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*tasks)
    assert [r.id for r in results] == ["id0", "id1", "id2"]
    assert not any(r.cache_hit for r in results)


def test_make_cache_off() -> None:
    assert make_cache(Settings()) is None
