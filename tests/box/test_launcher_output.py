"""The launcher's output plumbing (a closed stdout or stderr must never stop it or an engine)
and the messages it fails with."""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import Iterator

import pytest

from editjudge.server.box.engines import Engine
from editjudge.server.box.output import LINE_LIMIT, EngineOutput, QuietStreamHandler, pump
from editjudge.server.box.supervisor import cannot_start, describe_exit


@pytest.fixture
def closed_pipe() -> Iterator[io.BufferedWriter]:
    """The write end of a pipe whose reader is gone: every write raises BrokenPipeError."""
    r, w = os.pipe()
    os.close(r)
    with os.fdopen(w, "wb") as stream:
        yield stream


def test_output_moves_on_when_a_stream_closes(closed_pipe: io.BufferedWriter) -> None:
    r, w = os.pipe()
    with os.fdopen(w, "wb") as fallback, os.fdopen(r, "rb") as reader:
        out = EngineOutput([closed_pipe, fallback])
        out.write(b"[GPU 0] one\n")
        out.write(b"[GPU 0] two\n")
        closed_pipe.write(b"after\n")  # its descriptor now points at /dev/null
        closed_pipe.flush()
        fallback.close()
        assert reader.read() == b"[GPU 0] one\n[GPU 0] two\n"


def test_output_drops_lines_once_every_stream_is_closed(closed_pipe: io.BufferedWriter) -> None:
    out = EngineOutput([closed_pipe])
    for _ in range(3):
        out.write(b"[GPU 0] lost\n")  # never raises


def test_log_handler_survives_a_closed_stream(
    closed_pipe: io.BufferedWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = logging.getLogger("test.launcher.closed")
    logger.propagate = False
    handler = QuietStreamHandler(io.TextIOWrapper(closed_pipe, line_buffering=True))
    logger.addHandler(handler)
    try:
        for i in range(3):
            logger.warning("line %d", i)
    finally:
        logger.removeHandler(handler)
    assert "Logging error" not in capsys.readouterr().err


async def test_pump_reads_past_an_overlong_line() -> None:
    engine = Engine(gpu=3, port=0, argv=[], env={})
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    reader.feed_data(b"start\n" + b"x" * (LINE_LIMIT + 10) + b"\nend\n")
    reader.feed_eof()
    r, w = os.pipe()
    with os.fdopen(w, "wb") as sink, os.fdopen(r, "rb") as source:
        await asyncio.wait_for(pump(engine, reader, EngineOutput([sink])), 5)
        sink.close()
        lines = source.read().splitlines()
    assert lines[0] == b"[GPU 3] start" and lines[-1] == b"[GPU 3] end"
    assert b"was cut" in lines[1]


def test_a_missing_vllm_says_how_to_fix_it() -> None:
    exc = FileNotFoundError(2, "No such file or directory", "vllm")
    assert str(cannot_start("vllm serve", "vllm", exc)) == (
        "editjudge serve: cannot start the engine command 'vllm serve': vllm: not found; "
        "install vLLM or pass --vllm-cmd"
    )


def test_exits_are_described_by_status_or_signal() -> None:
    assert describe_exit(3) == "exited with 3"
    assert describe_exit(-9) == "was killed by SIGKILL"
