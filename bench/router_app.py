"""editjudge as the CPU overhead benchmark runs it: the real app plus a one-call protocol.

VIEScore makes two engine calls per item (SC and PQ), while a client talking straight to vLLM
sends one chat completion. To compare like with like, the benchmark's router also serves
``single``: one call carrying both images (rubric, source, instruction, edited image, question, in
VIEScore's order), constrained to one 0-10 score, so the router sends the body a direct client
would (:func:`bench.workload.chat_template` builds that body with this class).

Run as ``python bench/router_app.py`` (a path, so that ``--editjudge NAME@CHECKOUT`` can serve
another checkout's ``editjudge`` with this protocol: the process imports only ``editjudge``).
It reads ``EDITJUDGE_*`` settings like ``editjudge router``; ``EDITJUDGE_WORKERS`` > 1 starts that
many uvicorn worker processes, each with its own pool view (per-worker least-outstanding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import uvicorn
from fastapi import FastAPI

from editjudge.server.app import create_app
from editjudge.server.catalog import build_protocols
from editjudge.server.config import Settings
from editjudge.server.engine import ChatReply
from editjudge.server.protocols import Call, Item, Outcome, ScoringProtocol
from editjudge.server.protocols.base import fingerprint_of, image, text
from editjudge.server.protocols.parsing import parse_scores, score_schema
from editjudge.server.protocols.viescore import SC_RUBRIC

FIELDS = ("instruction_following",)
QUESTION = "Answer in JSON with the score."


class SingleCall(ScoringProtocol):
    """One chat completion per item: ``score`` = the judge's instruction-following score."""

    name = "single"
    description = "Bench-only: one call per item (both images), score = instruction_following."

    def __init__(self) -> None:
        schema = score_schema(FIELDS, 0, 10, 0)
        self._params = {"max_tokens": 32, "structured_outputs": {"json": schema}}
        self._hash = fingerprint_of(self.name, SC_RUBRIC, QUESTION, self._params)

    @property
    def template_hash(self) -> str:
        return self._hash

    def calls(self, item: Item) -> Sequence[Call]:
        content = [text(SC_RUBRIC)]
        if item.source is not None:
            content += [text("Original image:"), image(item.source)]
        content += [
            text(f"Editing instruction: {item.instruction}"),
            text("Edited image:"),
            image(item.image),
            text(QUESTION),
        ]
        return [Call("single", content, self._params)]

    def combine(self, item: Item, replies: Mapping[str, ChatReply]) -> Outcome:
        raw = replies["single"].content
        scores, reasoning = parse_scores(raw, FIELDS, 0, 10)
        return Outcome(scores[FIELDS[0]], scores, reasoning, raw)


def make_app() -> FastAPI:
    """The router app with every configured protocol plus :class:`SingleCall`."""
    settings = Settings()
    return create_app(settings, protocols=[*build_protocols(settings), SingleCall()])


def main() -> None:
    settings = Settings()
    # uvicorn's workers import the factory by name: this module's, however it was started.
    module = __spec__.name if __spec__ is not None and __spec__.name != "__main__" else "router_app"
    uvicorn.run(
        f"{module}:make_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
