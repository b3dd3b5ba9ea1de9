"""Testing aids for your own tests and demos: a fake vLLM engine (``editjudge fake-engine``),
and the real router in front of fake engines (``editjudge demo``).

>>> from editjudge.server.testing import FakeEngine, LocalRouter, fake_engines, start
>>> runner, url = await start(FakeEngine(latency_s=0.05))   # an OpenAI-compatible judge on loopback
>>> async with fake_engines(2, latency_s=0.05) as engines: ...   # [(engine, url), ...] for a block
>>> with LocalRouter(engines=2) as box: ...                  # the router on box.url, in a thread

The router core never imports this package.
"""

from __future__ import annotations

from .fake_engine import FakeEngine, fake_engines, request_images, start
from .fake_replies import regex_reply, schema_reply
from .local_router import LocalRouter

__all__ = [
    "FakeEngine",
    "LocalRouter",
    "fake_engines",
    "regex_reply",
    "request_images",
    "schema_reply",
    "start",
]
