"""bench.grammar_masks times the constraint as the router sends it, and as it was."""

from __future__ import annotations

import re

from bench.grammar_masks import FIELDS, spellings
from editjudge.server.protocols.parsing import ScoreFormat


def test_the_spellings_are_the_routers_own_and_the_bounded_one_it_replaced() -> None:
    s = spellings(240)
    now, before, first, bare = s.values()
    assert now == ScoreFormat(FIELDS, 0, 10, 240).regex() and "{0," not in now
    assert before.endswith('"reasoning":"[ !#-\\[\\]-~]{0,240}"\\}')
    assert first == ScoreFormat(FIELDS, 0, 10, 240, reasoning_first=True).regex()
    reply = '{"semantic_consistency":7,"over_editing":2,"reasoning":"' + "ok " * 10 + '"}'
    assert re.fullmatch(now, reply) and re.fullmatch(before, reply)
    long_reply = reply.replace("ok " * 10, "x" * 241)
    assert re.fullmatch(now, long_reply) and not re.fullmatch(before, long_reply)
    assert re.fullmatch(bare, '{"semantic_consistency":7,"over_editing":2}')
