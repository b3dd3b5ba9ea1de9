"""Every command's ``--help`` shows each option's default (or says it is required)."""

from __future__ import annotations

import argparse
import re

import pytest

from editjudge.client.cli import build_parser, main
from editjudge.client.cli.score import register


def commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


def help_text(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    try:
        status = main([command, "--help"])
    except SystemExit as exc:
        status = exc.code  # type: ignore[assignment]
    out = capsys.readouterr().out
    assert status in (0, None) and out.startswith(f"usage: editjudge {command}"), out
    return out


def option_entries(text: str) -> dict[str, str]:
    """``{"--batch-size N": "items per request (default: 16)", ...}`` from a rendered help:
    an entry starts two spaces in with a dash; its help may wrap onto deeper-indented lines."""
    entries: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        if re.match(r"^  -", line):
            current, _, rest = line.strip().partition("  ")
            entries[current] = rest.strip()
        elif current is not None and re.match(r"^   +\S", line):
            entries[current] = f"{entries[current]} {line.strip()}".strip()
        else:
            current = None
    return entries


def test_the_commands_are_all_there() -> None:
    assert {"score", "demo", "router", "serve", "compose", "fake-engine"} <= set(commands())


@pytest.mark.parametrize("command", commands())
def test_every_option_shows_its_default(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")  # wrapped, as in a terminal
    entries = option_entries(help_text(command, capsys))
    entries.pop("-h, --help", None)
    for option, text in entries.items():
        assert re.search(r"\b(default|required)\b", text, re.IGNORECASE), (option, text)


def test_score_shows_the_values_its_parser_uses(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # one line per option
    monkeypatch.setenv("EDITJUDGE_SERVER", "http://gpu-box:8123")
    parser = argparse.ArgumentParser()
    register(parser)
    entries = option_entries(help_text("score", capsys))
    assert entries["--batch-size N"].endswith("(default: 16)")
    assert entries["--retries N"].endswith("(default: 7)")
    assert entries["-o OUTPUT, --output OUTPUT"].endswith("(required)")
    assert "(default: off" in entries["--retry-errors"]
    assert entries["--server URL"].endswith("(default: http://gpu-box:8123)")
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            shown = next(v for k, v in entries.items() if action.option_strings[-1] in k)
            assert f"(default: {action.default})" in shown, (action.option_strings, shown)
