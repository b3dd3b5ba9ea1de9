from __future__ import annotations

import hmac

import pytest

from editjudge.server import auth


def test_every_key_is_compared_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    keys = [b"first-key", b"second-key", b"third-key"]
    assert auth.key_matches("first-key", keys)
    assert len(seen) == 3
    # compared as fixed-length digests: a key's length is not what decides the time taken
    assert {len(a) for a, _ in seen} == {len(b) for _, b in seen} == {32}
    seen.clear()
    assert not auth.key_matches("first-ke", keys)
    assert not auth.key_matches("", keys)
    assert len(seen) == 6
