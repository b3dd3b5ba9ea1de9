"""The ``vllm serve`` command line ``editjudge serve`` gives each engine."""

from __future__ import annotations

import pytest

from editjudge.server.box.engines import QUIET_ENDPOINTS, engine_argv
from editjudge.server.box.launcher import build_parser


def argv_for(*extra: str) -> list[str]:
    args = build_parser().parse_args(["--gpus", "0", "--model", "m", "--", *extra])
    args.vllm_args = args.vllm_args[1:] if args.vllm_args[:1] == ["--"] else args.vllm_args
    return engine_argv(args, 8001, 1)


def test_engines_do_not_log_health_checks_and_scrapes() -> None:
    argv = argv_for("--max-model-len", "2048")
    at = argv.index("--disable-access-log-for-endpoints")
    assert argv[at + 1] == QUIET_ENDPOINTS == "/health,/metrics"
    # the user's arguments come last, so that a flag given there wins
    assert argv[-2:] == ["--max-model-len", "2048"] and at < len(argv) - 2


@pytest.mark.parametrize(
    "theirs",
    [
        ["--disable-uvicorn-access-log"],  # vLLM before 0.16 has only this one
        ["--disable-access-log-for-endpoints", "/metrics"],
        ["--disable-access-log-for-endpoints=/health"],
    ],
)
def test_an_access_log_flag_after_the_dashes_replaces_ours(theirs: list[str]) -> None:
    argv = argv_for(*theirs)
    assert QUIET_ENDPOINTS not in argv and argv[-len(theirs) :] == theirs
