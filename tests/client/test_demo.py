"""``editjudge demo``: fake engines, the router and a scored sample in one command."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from editjudge import AuthenticationError, Client
from editjudge.server.testing import LocalRouter
from tests.client.test_cli import BARE, REPO
from tests.helpers import image_bytes

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def demo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "editjudge", "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=ENV,
    )


def test_demo_scores_a_generated_sample_through_the_real_path(tmp_path: Path) -> None:
    done = demo("--items", "4", "--port", "0", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(r"router on http://127\.0\.0\.1:\d+ in front of 2 fake engine", done.stderr)
    assert "4 results: 4 ok, 0 error" in done.stdout and "instruction_following" in done.stdout
    assert "--keep" in done.stderr
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in results) == sorted(i["id"] for i in items)
    assert len(items) == 4 and all(r["status"] == "ok" for r in results)
    assert {r["fingerprint"]["model"] for r in results} == {"fake-judge"}
    for item in items:  # real pairs: the edit differs from its source
        source = Image.open(tmp_path / item["source_image"])
        edit = Image.open(tmp_path / item["image"])
        assert source.size == edit.size and source.tobytes() != edit.tobytes()


def test_demo_keep_serves_the_printed_lines_until_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "editjudge", "demo", "--keep", "--items", "2", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        printed = ""
        for line in proc.stdout:
            printed += line
            if line.startswith("    print(r.status"):  # the last line of the Python snippet
                break
        url = re.search(r"serves on (http://127\.0\.0\.1:\d+) until Ctrl-C", printed)
        assert url, printed

        # The exact lines it printed work against it: the CLI line, and the Python snippet.
        cli_line = next(x for x in printed.splitlines() if x.strip().startswith("editjudge score"))
        argv = shlex.split(cli_line)[1:]
        cli = subprocess.run(
            [sys.executable, str(BARE), *argv], capture_output=True, text=True, env=ENV
        )
        assert cli.returncode == 0 and "2 results: 2 ok" in cli.stdout, cli.stderr
        snippet = printed[printed.index("from editjudge import Client") :]
        python = subprocess.run(
            [sys.executable, "-c", snippet], capture_output=True, text=True, env=ENV
        )
        assert python.returncode == 0, python.stderr
        assert python.stdout.startswith("ok ") and "instruction_following" in python.stdout
        assert f"-F instruction='add a red ball on the grass' {url[1]}/score" in printed
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "stopped" in stderr and "Traceback" not in stderr
    folder = re.search(r"sample in (\S+)", stderr)
    assert folder and not Path(folder[1]).exists()  # the temporary folder is gone


def test_demo_without_the_server_extra_says_how_to_install_it() -> None:
    done = subprocess.run(
        [sys.executable, str(BARE), "demo"], capture_output=True, text=True, cwd=REPO, env=ENV
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "needs the server extra" in done.stderr and "pip install -e '.[server]'" in done.stderr


def test_demo_on_a_taken_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = demo("--port", str(port), "--dir", str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port 0" in done.stderr


def test_local_router_takes_settings_from_its_arguments_never_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDITJUDGE_API_KEYS", "from-the-shell")
    monkeypatch.setenv("EDITJUDGE_MAX_BATCH_ITEMS", "3")
    with LocalRouter(1) as box, Client(box.url) as judge:
        assert box.alive and judge.info().limits.max_batch_items == 1024  # the default
        assert judge.score(image_bytes(), "add a hat").ok  # no key needed
        assert box.engines[0].served == 2  # viescore: two judge calls
    assert not box.alive
    with (
        LocalRouter(1, api_keys="k1") as box,
        Client(box.url, api_key="wrong") as judge,
        pytest.raises(AuthenticationError),
    ):
        judge.score(image_bytes(), "add a hat")
