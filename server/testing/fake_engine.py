"""A stand-in for a vLLM OpenAI server: for tests, router benchmarks and laptop demos.

It answers ``/health``, ``/v1/models``, ``/version``, ``/metrics`` and ``/v1/chat/completions`` the
way vLLM does. Replies honour the request's ``structured_outputs`` (a ``regex`` gets a string it
matches, a JSON schema of integer fields gets integers in range; a ``choice`` gets one of its
options, with ``top_logprobs`` when asked) and ``max_tokens`` (counting a character as a token: a
longer reply is cut and finishes with ``length``, as vLLM's would), after a configurable latency.
Fault injection: ``status`` (answer every completion with that HTTP
status), ``healthy`` (``/health`` answers 503 when false), ``hang`` (never answer), ``reply`` (a
function that writes the completion text), ``raw_reply`` (a 200 that is not a chat completion).
Run one with ``editjudge fake-engine``; with ``--request-log PATH`` it appends one JSON line
per completion received and per completion answered, so a test can count engine-side work even
after the process is ``kill -9``-ed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from aiohttp import web

from .fake_replies import first_token_logprobs, schema_reply

ReplyFn = Callable[[dict[str, Any]], str]


@dataclass
class FakeEngine:
    """State and knobs of one fake server; mutate attributes while it runs to inject faults."""

    model: str = "fake-judge"
    latency_s: float = 0.0
    healthy: bool = True
    status: int = 200
    hang: bool = False
    reply: ReplyFn | None = None
    served: int = 0
    cached_tokens: int | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    keep_requests: bool = True
    request_log: IO[str] | None = None
    raw_reply: bytes | None = None  # answer completions with these bytes (HTTP 200), not JSON
    # A batch of at most ``capacity`` requests runs at once (None: no limit); the rest wait, as
    # in vLLM's scheduler. ``preprocess_s`` is spent per request, one at a time, before it can
    # wait or run (an API server busy preprocessing images). Both show in /metrics.
    capacity: int | None = None
    preprocess_s: float = 0.0
    running: int = 0
    waiting: int = 0
    peak_in_flight: int = 0
    _in_flight: int = 0
    _slots: asyncio.Semaphore | None = field(default=None, repr=False)
    _preprocessor: asyncio.Lock | None = field(default=None, repr=False)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/version", self._version)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.healthy else 503)

    async def _models(self, request: web.Request) -> web.Response:
        data = {"object": "list", "data": [{"id": self.model, "max_model_len": 4096}]}
        return web.Response(body=orjson.dumps(data), content_type="application/json")

    async def _version(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"version":"0.0.0-fake"}', content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        labels = f'{{engine="0",model_name="{self.model}"}}'
        text = (
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{labels} {float(self.running)}\n"
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{labels} {float(self.waiting)}\n"
            "# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.\n"
            "# TYPE vllm:e2e_request_latency_seconds histogram\n"
            f"vllm:e2e_request_latency_seconds_count{labels} {float(self.served)}\n"
        )
        return web.Response(text=text)

    async def _chat(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        if self.keep_requests:
            self.requests.append(body)
        self._log("recv", body)
        if self.hang:
            await asyncio.Event().wait()
        self._in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            await self._run()
        finally:
            self._in_flight -= 1
        if self.status != 200:
            return web.Response(status=self.status, text='{"error": "injected"}')
        if self.raw_reply is not None:
            return web.Response(body=self.raw_reply, content_type="text/html")
        self.served += 1
        self._log("done", body)
        return web.Response(
            body=orjson.dumps(self.completion(body)), content_type="application/json"
        )

    async def _run(self) -> None:
        """Preprocess, wait for a batch slot, run for ``latency_s``."""
        if self.preprocess_s:
            self._preprocessor = self._preprocessor or asyncio.Lock()
            async with self._preprocessor:
                await asyncio.sleep(self.preprocess_s)
        if self.capacity is not None and self._slots is None:
            self._slots = asyncio.Semaphore(self.capacity)
        self.waiting += 1
        try:
            if self._slots is not None:
                await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
        finally:
            self.running -= 1
            if self._slots is not None:
                self._slots.release()

    def _log(self, event: str, body: dict[str, Any]) -> None:
        """One line per event, written through to the OS so it survives ``kill -9``."""
        if self.request_log is None:
            return
        line = {"event": event, "images": request_images(body), "seed": _seed(body)}
        self.request_log.write(orjson.dumps(line).decode() + "\n")
        self.request_log.flush()

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chat-completion object this engine answers ``body`` with."""
        structured = body.get("structured_outputs") or {}
        content = self.reply(body) if self.reply else schema_reply(structured, _seed(body))
        finish = "stop"
        budget = body.get("max_tokens")
        # A reply that needs every token of the budget has no room left for its end token.
        if isinstance(budget, int) and len(content) >= budget:
            content, finish = content[:budget], "length"
        choice: dict[str, Any] = {
            "index": 0,
            "finish_reason": finish,
            "message": {"role": "assistant", "content": content},
        }
        if body.get("logprobs"):
            choice["logprobs"] = {"content": [first_token_logprobs(content, structured, body)]}
        details = {"cached_tokens": self.cached_tokens} if self.cached_tokens is not None else None
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": self.model,
            "choices": [choice],
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": 10,
                "total_tokens": 110,
                "prompt_tokens_details": details,
            },
        }


def _seed(body: dict[str, Any]) -> int:
    """A deterministic number from the request's text, so equal requests get equal replies."""
    texts = [
        part.get("text", "")
        for msg in body.get("messages", [])
        for part in (msg.get("content") if isinstance(msg.get("content"), list) else [])
        if isinstance(part, dict)
    ]
    return int(hashlib.blake2b("|".join(texts).encode(), digest_size=4).hexdigest(), 16)


def request_images(body: dict[str, Any]) -> list[str]:
    """Short digests of a request's image URLs, in message order (identifies the item)."""
    return [
        hashlib.blake2b(part["image_url"]["url"].encode(), digest_size=8).hexdigest()
        for msg in body.get("messages", [])
        for part in (msg.get("content") if isinstance(msg.get("content"), list) else [])
        if isinstance(part, dict) and part.get("type") == "image_url"
    ]


async def start(
    engine: FakeEngine, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Serve ``engine`` on ``host:port`` (0 = any free port); return the runner and base URL."""
    # A short shutdown: a test's hung or slow handlers must not hold its teardown for a minute.
    runner = web.AppRunner(engine.app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = int(runner.addresses[0][1])
    return runner, f"http://{host}:{bound}"


@contextlib.asynccontextmanager
async def fake_engines(n: int, **knobs: Any) -> AsyncIterator[list[tuple[FakeEngine, str]]]:
    """``n`` fake engines (``FakeEngine(**knobs)`` each) on loopback: ``[(engine, url), ...]``;
    stopped when the block ends."""
    runners: list[web.AppRunner] = []
    try:
        out = []
        for _ in range(n):
            engine = FakeEngine(**knobs)
            runner, url = await start(engine)
            runners.append(runner)
            out.append((engine, url))
        yield out
    finally:
        for runner in runners:
            await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """``editjudge fake-engine``: serve one fake engine until interrupted."""
    parser = argparse.ArgumentParser(
        prog="editjudge fake-engine",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address")
    parser.add_argument("--port", type=int, default=9001, help="port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per completion")
    parser.add_argument("--model", default="fake-judge", help="model name it reports")
    parser.add_argument("--request-log", help="append a JSON line per completion received/answered")
    args = parser.parse_args(argv)
    log = open(args.request_log, "a", buffering=1) if args.request_log else None  # noqa: SIM115
    engine = FakeEngine(
        model=args.model, latency_s=args.latency, keep_requests=False, request_log=log
    )
    web.run_app(engine.app(), host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
