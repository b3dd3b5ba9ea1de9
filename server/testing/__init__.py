"""Testing aids for your own tests and demos: a fake vLLM engine (``editjudge fake-engine``).

>>> from editjudge.server.testing import FakeEngine, start
>>> runner, url = await start(FakeEngine(latency_s=0.05))   # an OpenAI-compatible judge on loopback

The router core never imports this package.
"""

from __future__ import annotations

from .fake_engine import FakeEngine, regex_reply, request_images, schema_reply, start

__all__ = ["FakeEngine", "regex_reply", "request_images", "schema_reply", "start"]
