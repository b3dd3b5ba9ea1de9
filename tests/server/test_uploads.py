"""Request bodies: read after authentication, charged as they arrive, at a minimum rate.

Slow uploads hold only what they sent and are cut off with 408, so they cannot lock out other
callers; a caller that disconnects mid-upload costs one log line. The in-process tests drive the
ASGI app directly with a ``receive`` they control; the lock-out test runs the router as deployed
and trickles bodies over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest

from editjudge.server.app import create_app
from editjudge.server.config import Settings
from tests.helpers import fake_engines, image_bytes, item, router
from tests.processes import Procs

KEY = "sk-upload-test-key"
Receive = Callable[[], Awaitable[dict[str, Any]]]


@contextlib.asynccontextmanager
async def asgi_app(**overrides: object) -> AsyncIterator[Any]:
    """The app with its lifespan run, in front of one fake engine."""
    async with fake_engines(1) as engines:
        settings = Settings(backends=[engines[0][1]], health_interval_s=0.2, **overrides)  # type: ignore[arg-type]
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            yield app


async def call(
    app: Any, path: str, headers: dict[str, str], receive: Receive
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One POST through the ASGI app: status, response headers, JSON body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("router", 80),
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    head = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], head, orjson.loads(body)


def trickle(first: bytes, reads: list[float]) -> Receive:
    """A body whose first chunk arrives, then nothing more (a stalled or slow upload)."""

    async def receive() -> dict[str, Any]:
        reads.append(time.monotonic())
        if len(reads) == 1:
            return {"type": "http.request", "body": first, "more_body": True}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


JSON = {"content-type": "application/json", "content-length": "1000000"}


@pytest.mark.parametrize(
    ("path", "ctype", "first"),
    [
        ("/score", "application/json", b"{"),
        ("/score", "multipart/form-data; boundary=b", b"--b\r\n"),
        ("/score/group", "application/json", b"{"),
    ],
)
async def test_auth_is_checked_before_any_body_byte_is_read(
    path: str, ctype: str, first: bytes
) -> None:
    async with asgi_app(api_keys=[KEY], body_timeout_s=0.3) as app:
        reads: list[float] = []
        headers = {**JSON, "content-type": ctype}
        status, head, body = await asyncio.wait_for(
            call(app, path, headers, trickle(first, reads)), 5
        )
        assert status == 401 and body["error"]["code"] == "unauthorized"
        assert reads == []  # not one receive() before the answer
        # With the key, the same request is read: the stalled body then ends in a 408.
        keyed = {**headers, "authorization": f"Bearer {KEY}"}
        status, head, body = await asyncio.wait_for(
            call(app, path, keyed, trickle(first, reads)), 5
        )
        assert status == 408 and body["error"]["code"] == "body_timeout"
        assert reads and head["connection"] == "close"


async def test_a_stalled_body_is_408_after_the_timeout_plus_what_its_rate_earned() -> None:
    async with asgi_app(body_timeout_s=0.4, body_min_rate=100_000) as app:
        for first, earned in ((b"{", 0.0), (b"{" + b" " * 49_999, 0.5)):
            reads: list[float] = []
            t0 = time.monotonic()
            status, _, body = await asyncio.wait_for(
                call(app, "/score", JSON, trickle(first, reads)), 5
            )
            took = time.monotonic() - t0
            assert status == 408 and body["error"]["code"] == "body_timeout"
            assert 0.4 + earned - 0.05 <= took < 0.4 + earned + 1.0, took
            assert app.state.ctx.budget.bytes == 0  # the stalled request gave its bytes back


async def test_a_client_gone_mid_upload_is_one_info_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with asgi_app() as app:
        messages = iter(
            [
                {"type": "http.request", "body": b'{"image": "iVBOR', "more_body": True},
                {"type": "http.disconnect"},
            ]
        )

        async def receive() -> dict[str, Any]:
            return next(messages)

        status, _, body = await call(app, "/score", JSON, receive)
        assert status == 499 and body["error"]["code"] == "client_disconnected"
        assert app.state.ctx.budget.bytes == 0
    ours = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert [r.levelno for r in ours] == [logging.INFO]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


async def test_duplicate_multipart_parts_are_refused_not_silently_dropped() -> None:
    png = ("a.png", image_bytes(), "image/png")
    other = ("b.png", image_bytes((1, 2, 3)), "image/png")
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        r = await c.post(
            "/score", files=[("image", png), ("image", other)], data={"instruction": "x"}
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_request"
        assert "image" in r.json()["error"]["message"]
        r = await c.post(
            "/score",
            files=[("image", png)],
            data={"instruction": ["make it blue", "make it red"]},
        )
        assert r.status_code == 422 and "instruction" in r.json()["error"]["message"]
        assert engines[0][0].requests == []
        ok = await c.post("/score", files=[("image", png)], data={"instruction": "x"})
        assert ok.status_code == 200 and ok.json()["status"] == "ok"


async def _slow_upload(port: int, interval_s: float) -> tuple[float, bytes]:
    """A chunked upload sending one byte every ``interval_s``; (seconds until answered, answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /score HTTP/1.1\r\nhost: router\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )
    t0 = time.monotonic()
    answer = b""
    try:
        while not answer:
            writer.write(b"1\r\n \r\n")
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(65536), interval_s)
        rest = b""
        # The router answers, then closes the connection. A byte this client sent in between
        # reaches a closed socket, and the router's kernel answers it with a reset: the close
        # then shows as ECONNRESET here instead of the end of the stream.
        with contextlib.suppress(ConnectionResetError):
            rest = await asyncio.wait_for(reader.read(), 5)
        return time.monotonic() - t0, answer + rest
    finally:
        writer.close()


async def test_slow_uploads_cannot_lock_others_out(procs: Procs) -> None:
    """48 uploads trickling a byte every 0.2 s against a 4 MiB budget: every legitimate request
    still gets 200, and each slow one gets 408 and a closed connection once its time is up.
    Before, each chunked upload reserved MAX_BODY_BYTES while it was read: 5 of 5 got 429."""
    engine = procs.engine(latency=0.1)
    env = {
        "EDITJUDGE_MAX_QUEUED_IMAGE_BYTES": str(4 << 20),
        "EDITJUDGE_BODY_TIMEOUT_S": "2",
    }
    rtr = procs.router([engine.url], env=env)
    port = int(rtr.url.rsplit(":", 1)[1])
    slow = [asyncio.create_task(_slow_upload(port, 0.2)) for _ in range(48)]
    await asyncio.sleep(0.5)  # every slow upload is being read
    async with httpx.AsyncClient(base_url=rtr.url, timeout=30) as c:
        legit = await asyncio.gather(*(c.post("/score", json=item(i)) for i in range(5)))
    assert [r.status_code for r in legit] == [200] * 5, [r.text for r in legit]
    for took, answer in await asyncio.gather(*slow):
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"body_timeout" in answer and b"connection: close" in answer.lower()
        assert 1.5 < took < 8, took
