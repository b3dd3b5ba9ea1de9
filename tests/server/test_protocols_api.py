"""Built-in and custom protocols through the app on fakes, and start-up template validation."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from editjudge.server.catalog import build_protocols
from editjudge.server.config import Settings
from editjudge.server.protocols import ProtocolRegistry
from tests.helpers import fake_engines, item, router

CUSTOM = """
type = "rubric"
fields = ["faithfulness"]
range = [1, 3]
prompt = "Judge {instruction}:{image}"
"""


async def test_builtin_protocols_are_listed() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        info = (await client.get("/info")).json()
        assert {"viescore", "expected", "edit-rubric"} <= set(info["protocols"])
        # the reference protocols are served only with their prompt files
        assert not {"gedit", "imgedit"} & set(info["protocols"])
        assert info["default_protocol"] == "viescore"


async def test_expected_score_from_the_engines_logprobs() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        res = (await client.post("/score", json={**item(2), "protocol": "expected"})).json()
        assert res["status"] == "ok", res
        (body,) = engines[0][0].requests
        assert body["structured_outputs"] == {"choice": [str(d) for d in range(10)]}
        assert body["max_tokens"] == 2 and body["logprobs"] is True
        # the fake puts 0.7 on its answer and spreads 0.3 evenly over the other nine digits
        answer = int(res["raw"])
        mean = 0.7 * answer + 0.3 / 9 * (45 - answer)
        assert res["scores"]["expected"] == pytest.approx(mean, abs=1e-6)
        assert res["score"] == pytest.approx(mean * 10 / 9, abs=1e-3)
        entropy = -(0.7 * math.log(0.7) + 9 * (0.3 / 9) * math.log(0.3 / 9))
        assert res["scores"]["entropy"] == pytest.approx(entropy, abs=1e-6)
        assert res["scores"]["valid_mass"] == pytest.approx(1.0)
        assert res["fingerprint"]["protocol"] == "expected"


async def test_expected_without_logprobs_is_an_error_item() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        engines[0][0].reply = lambda body: "7"
        # a server that drops logprobs: the fake only adds them when asked, so strip the ask
        original = engines[0][0].completion

        def no_logprobs(body: dict[str, object]) -> dict[str, object]:
            return original({k: v for k, v in body.items() if k != "logprobs"})

        engines[0][0].completion = no_logprobs  # type: ignore[method-assign]
        res = (await client.post("/score", json={**item(2), "protocol": "expected"})).json()
        assert res["status"] == "error" and res["score"] is None
        assert res["error"]["code"] == "unparseable_reply" and res["raw"] == "7"


async def test_edit_rubric_scores_on_0_to_10_from_1_to_5_criteria() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        res = (await client.post("/score", json={**item(1), "protocol": "edit-rubric"})).json()
        assert res["status"] == "ok", res
        crit = [res["scores"][k] for k in ("instruction_adherence", "editing_quality")]
        crit.append(res["scores"]["detail_preservation"])
        assert all(1 <= c <= 5 for c in crit)
        assert res["score"] == pytest.approx((sum(crit) / 3 - 1) * 2.5, abs=1e-3)


async def test_custom_template_is_served_by_name(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(CUSTOM)
    async with (
        fake_engines(1) as engines,
        router([u for _, u in engines], templates_dir=tmp_path) as client,
    ):
        assert "mine" in (await client.get("/info")).json()["protocols"]
        res = (await client.post("/score", json={**item(0), "protocol": "mine"})).json()
        assert res["status"] == "ok" and res["fingerprint"]["protocol"] == "mine"
        assert res["score"] == pytest.approx((res["scores"]["faithfulness"] - 1) * 5)
        (body,) = engines[0][0].requests
        assert body["messages"][0]["content"][0]["text"] == "Judge make object 0 blue:\n"


def start_router(
    env: dict[str, str], command: tuple[str, ...] = ("-m", "editjudge.server")
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EDITJUDGE_")}
    return subprocess.run(
        [sys.executable, *command],
        env={**clean, "EDITJUDGE_BACKENDS": "http://127.0.0.1:9", "EDITJUDGE_PORT": "9", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_router_refuses_to_start_with_a_broken_template(tmp_path: Path) -> None:
    (tmp_path / "ok.toml").write_text(CUSTOM)
    (tmp_path / "broken.toml").write_text(CUSTOM.replace("{image}", "{edited}"))
    proc = start_router({"EDITJUDGE_TEMPLATES_DIR": str(tmp_path)})
    assert proc.returncode == 2
    assert "broken.toml" in proc.stderr and "unknown placeholder {edited}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_launcher_refuses_a_broken_template_before_starting_engines(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text("type = 'expected'\nprompt = 'no image'")
    marker = tmp_path / "engine-started"
    command = ("-m", "editjudge.server.box.launcher", "--gpus", "0", "--model", "m", "--no-pin")
    command += ("--vllm-cmd", f"touch {marker}")
    proc = start_router({"EDITJUDGE_TEMPLATES_DIR": str(tmp_path)}, command)
    assert proc.returncode == 2, proc.stderr
    assert "broken.toml" in proc.stderr and "{image}" in proc.stderr
    assert not marker.exists()


def test_router_refuses_an_unknown_default_protocol(tmp_path: Path) -> None:
    proc = start_router({"EDITJUDGE_PROTOCOL": "nope"})
    assert proc.returncode == 2 and "'nope'" in proc.stderr


def test_a_custom_template_can_be_the_default(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(CUSTOM)
    settings = Settings(templates_dir=tmp_path, protocol="mine")
    assert ProtocolRegistry(build_protocols(settings), settings.protocol).default == "mine"
