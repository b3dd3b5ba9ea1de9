"""The least CPU a Python router on editjudge's HTTP stack spends per request (not a router).

The overhead benchmark (``bench/router_overhead.py --floor``) runs this beside editjudge and
vllm-router to split editjudge's CPU per request into what the stack itself costs and what
editjudge adds. It is the same stack as ``editjudge router``: uvicorn with uvloop and httptools
(what ``uvicorn[standard]`` picks), aiohttp to the engines with the same connector settings, orjson.
It does only what no router can skip, on the benchmark's bodies only:

- ``POST /score`` (the ``single`` protocol's body: ``source_image``, ``instruction``, ``image``):
  read the body, parse it, splice the two data URLs' base64 into the pre-serialised chat body the
  router would send, post it to the engine with the fewest requests outstanding, parse the reply
  and its JSON score, answer ``{"status": "ok", "score": ...}``;
- ``POST /v1/chat/completions``: forward the body's bytes and return the engine's answer (what
  vllm-router does).

No validation, size limits, image checks, retries, health, metrics or logging: a malformed body
ends the connection. Run as a file with ``EDITJUDGE_BACKENDS``, ``EDITJUDGE_HOST`` and
``EDITJUDGE_PORT`` set, as the benchmark sets them for editjudge.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: bench importable

from bench.workload import chat_template

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = [(b"content-type", b"application/json")]
DATA_URL = len("data:image/jpeg;base64,")


class Floor:
    """The ASGI app: least-outstanding over ``engines``, one aiohttp session."""

    def __init__(self, engines: list[str]) -> None:
        self.chat = [f"{e}/v1/chat/completions" for e in engines]
        self.outstanding = dict.fromkeys(self.chat, 0)
        self.template = chat_template()
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
                self.session = aiohttp.ClientSession(
                    connector=connector, cookie_jar=aiohttp.DummyCookieJar()
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == "/health":
            return await _answer(send, 200, b"{}")
        body = await _body(receive)
        if path == "/score":
            request = orjson.loads(body)
            chat = self.template.render(
                request["source_image"][DATA_URL:].encode(), request["image"][DATA_URL:].encode()
            )
            status, reply = await self._post(chat)
            content = orjson.loads(reply)["choices"][0]["message"]["content"]
            score = orjson.loads(content)["instruction_following"]
            answer = orjson.dumps({"status": "ok", "score": score})
            return await _answer(send, 200, answer)
        status, reply = await self._post(body)
        await _answer(send, status, reply)

    async def _post(self, body: bytes) -> tuple[int, bytes]:
        url = min(self.outstanding, key=self.outstanding.__getitem__)
        self.outstanding[url] += 1
        try:
            assert self.session is not None
            headers = {"Content-Type": "application/json"}
            async with self.session.post(url, data=body, headers=headers) as response:
                return response.status, await response.read()
        finally:
            self.outstanding[url] -= 1


async def _body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    while message.get("more_body"):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    engines = os.environ["EDITJUDGE_BACKENDS"].split(",")
    uvicorn.run(
        Floor(engines),
        host=os.environ.get("EDITJUDGE_HOST", "127.0.0.1"),
        port=int(os.environ["EDITJUDGE_PORT"]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
