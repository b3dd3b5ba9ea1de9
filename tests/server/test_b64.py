"""The base64 alphabet check: the C library's strspn and the pure-Python fall-back agree."""

from __future__ import annotations

import base64
import random

import pytest

from editjudge.server import b64

CASES = [
    b"QUJD",
    b"QUI=",
    b"QQ==",
    b"Q===",
    b"QU=I",
    b"=QUI",
    b"QU I",
    b"QU\x00I",
    b"QUI\x00",
    b"",
    b"=",
    b"QU\xffI",
    b"QUJD\n",
    b"-_-_",
    base64.b64encode(random.Random(3).randbytes(100_000)),
    base64.b64encode(random.Random(3).randbytes(100_001)) + b"*",
]


@pytest.mark.parametrize("raw", CASES)
def test_strspn_and_translate_agree(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    stray = raw.translate(None, b64.ALPHABET)
    expected = stray in (b"", b"=", b"==") and raw.endswith(stray)
    assert b64.valid_b64(raw) is expected
    monkeypatch.setattr(b64, "_strspn", None)
    assert b64.valid_b64(raw) is expected
