"""``EDITJUDGE_WORKERS``: one process serves the app object, several get an app factory."""

from __future__ import annotations

from typing import Any

import pytest

import editjudge.server.__main__ as entry
from editjudge.server.config import Settings


@pytest.mark.parametrize("workers", [1, 3])
def test_run_hands_uvicorn_an_app_or_a_factory(
    workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(entry.uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    entry.run(Settings(backends=["http://a:1"], workers=workers))
    assert seen["workers"] == workers
    if workers == 1:
        assert not isinstance(seen["app"], str) and seen["factory"] is False
    else:
        assert seen["app"] == "editjudge.server.app:create_app" and seen["factory"] is True


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Settings(workers=0)
