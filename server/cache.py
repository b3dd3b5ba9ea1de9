"""An optional score cache with single-flight, keyed on everything that determines a score.

The key hashes the reproducibility fingerprint (model, vLLM version, protocol, template hash,
sampling, image policy) with the digests of the edited and source images and the instruction, so a
hit is exactly the result the engines would compute again. Only ``status: "ok"`` results are
stored; backend trouble is never cached. Identical requests in flight at the same time are computed
once: the first one runs, later ones wait for its result (single-flight), whether or not the cache
stores it.

Two stores: an in-memory LRU (``EDITJUDGE_SCORE_CACHE=memory``) and an SQLite file
(``=sqlite``, at ``EDITJUDGE_SCORE_CACHE_PATH``) that survives restarts and can be shared by router
processes on one host. Both keep at most ``EDITJUDGE_SCORE_CACHE_MAX_ITEMS`` entries, evicting the
least recently used.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

import orjson

from .config import Settings
from .protocols import Item
from .schemas import Fingerprint, ScoreResult


class Store(Protocol):
    """Bytes by key; implementations are thread-safe and may block briefly."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...

    def close(self) -> None: ...


class MemoryStore:
    """An LRU dictionary of at most ``max_items`` entries."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._data: collections.OrderedDict[str, bytes] = collections.OrderedDict()

    def get(self, key: str) -> bytes | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: str, value: bytes) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.max_items:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        self._data.clear()


class SqliteStore:
    """An SQLite table of at most ``max_items`` rows (trimmed by last use, about every 1%)."""

    def __init__(self, path: Path, max_items: int) -> None:
        self.max_items = max_items
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS scores "
            "(key TEXT PRIMARY KEY, value BLOB NOT NULL, used REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS scores_used ON scores(used)")
        self._trim_every = max(1, max_items // 100)
        self._puts = 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM scores WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE scores SET used = ? WHERE key = ?", (time.time(), key))
            return bytes(row[0])

    def put(self, key: str, value: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO scores (key, value, used) VALUES (?, ?, ?)",
                (key, value, time.time()),
            )
            self._puts += 1
            if self._puts % self._trim_every == 0:
                self._db.execute(
                    "DELETE FROM scores WHERE key NOT IN "
                    "(SELECT key FROM scores ORDER BY used DESC LIMIT ?)",
                    (self.max_items,),
                )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _LeaderFailed(Exception):
    """The request computing a shared result was cancelled or raised; a follower takes over."""


class ScoreCache:
    """Cached, single-flight scoring: see :meth:`get_or_compute`."""

    def __init__(self, store: Store, on_hit: Callable[[], None] | None = None) -> None:
        self.store = store
        self._on_hit = on_hit
        self._in_flight: dict[str, asyncio.Future[ScoreResult]] = {}
        # SQLite may touch the disk: keep it off the event loop. The memory store is instant.
        self._threaded = isinstance(store, SqliteStore)

    @staticmethod
    def key(fingerprint: Fingerprint, item: Item) -> str:
        """What determines a score: the fingerprint, both image digests and the instruction."""
        parts = {
            "fingerprint": fingerprint.model_dump(mode="json"),
            "image": item.image.digest,
            "source": item.source.digest if item.source else None,
            "instruction": item.instruction,
        }
        return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()

    async def get(self, key: str, item_id: str | None) -> ScoreResult | None:
        """The stored result for ``key``, as a hit for the item ``item_id``; None on a miss."""
        return (await self.get_many([(key, item_id)]))[0]

    async def put(self, key: str, result: ScoreResult) -> None:
        """Store ``result`` if it is a success (errors are never cached)."""
        await self.put_many([(key, result)])

    async def get_many(self, wanted: Sequence[tuple[str, str | None]]) -> list[ScoreResult | None]:
        """:meth:`get` for each ``(key, item_id)``, in order, with one trip to the store's thread
        (SQLite): a group's candidates make one trip, not one each."""
        t0 = time.perf_counter()
        keys = [key for key, _ in wanted]
        if self._threaded:
            raws = await asyncio.to_thread(_get_all, self.store, keys)
        else:
            raws = _get_all(self.store, keys)
        return [
            None if raw is None else self._hit(ScoreResult.model_validate_json(raw), item_id, t0)
            for raw, (_, item_id) in zip(raws, wanted, strict=True)
        ]

    async def put_many(self, results: Sequence[tuple[str, ScoreResult]]) -> None:
        """:meth:`put` for each ``(key, result)``, with one trip to the store's thread (SQLite)."""
        rows = [(key, _stored(result)) for key, result in results if result.status == "ok"]
        if not rows:
            return
        if self._threaded:
            await asyncio.to_thread(_put_all, self.store, rows)
        else:
            _put_all(self.store, rows)

    async def get_or_compute(
        self, key: str, item_id: str | None, compute: Callable[[], Awaitable[ScoreResult]]
    ) -> ScoreResult:
        """A stored result, the result of an identical request in flight, or ``compute()``."""
        t0 = time.perf_counter()
        while (leader := self._in_flight.get(key)) is not None:
            try:
                shared = await asyncio.shield(leader)
            except _LeaderFailed:
                continue
            if shared.status == "ok":
                return self._hit(shared, item_id, t0)
            return shared.model_copy(update={"id": item_id})
        future: asyncio.Future[ScoreResult] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future  # registered before any await: later callers follow
        try:
            result = await self.get(key, item_id)
            if result is None:
                result = await compute()
                if result.id != item_id:
                    result = result.model_copy(update={"id": item_id})
                await self.put(key, result)
            future.set_result(result)
            return result
        except BaseException:
            future.set_exception(_LeaderFailed())
            future.exception()  # retrieved: no "never retrieved" warning when nobody follows
            raise
        finally:
            del self._in_flight[key]

    def _hit(self, result: ScoreResult, item_id: str | None, t0: float) -> ScoreResult:
        if self._on_hit is not None:
            self._on_hit()
        latency = round((time.perf_counter() - t0) * 1000, 3)
        update = {"id": item_id, "cache_hit": True, "rank": None, "z_score": None}
        return result.model_copy(update={**update, "latency_ms": latency})

    def close(self) -> None:
        self.store.close()


def _stored(result: ScoreResult) -> bytes:
    """What the store keeps of a success: the result without what belongs to one request."""
    return (
        result.model_copy(update={"id": None, "rank": None, "z_score": None})
        .model_dump_json()
        .encode()
    )


def _get_all(store: Store, keys: Sequence[str]) -> list[bytes | None]:
    return [store.get(key) for key in keys]


def _put_all(store: Store, rows: Sequence[tuple[str, bytes]]) -> None:
    for key, value in rows:
        store.put(key, value)


def make_cache(settings: Settings, on_hit: Callable[[], None] | None = None) -> ScoreCache | None:
    """The cache ``EDITJUDGE_SCORE_CACHE`` asks for, or None when it is off."""
    if settings.score_cache == "memory":
        return ScoreCache(MemoryStore(settings.score_cache_max_items), on_hit)
    if settings.score_cache == "sqlite":
        store = SqliteStore(settings.score_cache_path, settings.score_cache_max_items)
        return ScoreCache(store, on_hit)
    return None
