"""``editjudge serve`` builds its router before it starts any engine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from editjudge.server.box import launcher, router
from tests.processes import free_port


async def test_a_router_that_cannot_be_built_fails_serve_before_any_engine_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a lent GPU box the router's /docs assets package was missing: the engines took minutes
    to start, then the router failed and took them down. Now nothing starts."""

    def broken(settings: object) -> object:
        raise RuntimeError("the /docs assets need the fastapi-offline package")

    monkeypatch.setattr(router, "create_app", broken)
    marker = tmp_path / "engine-started"
    engine = f"{sys.executable} -c \"open('{marker}', 'w')\""
    argv = ["--gpus", "0", "--model", "m", "--no-pin", "--vllm-cmd", engine, "--host", "127.0.0.1"]
    args = launcher.build_parser().parse_args([*argv, "--port", str(free_port())])
    assert await launcher.run(args) == 1
    assert not marker.exists()
    err = capsys.readouterr().err
    assert "cannot build the router: RuntimeError: the /docs assets need" in err
