"""Where ``editjudge serve``'s output goes, and why a closed stream never stops it.

Engine lines are copied to our stdout with a ``[GPU i]`` prefix. Once our stdout is closed
(``editjudge serve | tee log`` and tee is gone), engine lines go to stderr, or nowhere, and the
engines keep serving; the launcher's own log records outlive a closed stderr the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import IO, Any, BinaryIO

from .engines import Engine

log = logging.getLogger("editjudge.launcher")

LINE_LIMIT = 1 << 20  # longest engine output line kept whole (progress bars redraw with \r only)


def mute(stream: IO[Any]) -> None:
    """Point a closed stream's descriptor at /dev/null, so that its writes and flushes (Python's
    own at exit included, which would otherwise turn our exit status into 120) succeed."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class EngineOutput:
    """Where engine lines go: our stdout, then stderr once stdout is closed, then nowhere.

    Python ignores SIGPIPE, so once the reader of our stdout is gone (``| tee log`` and tee was
    Ctrl-C'd) every write raises BrokenPipeError. That must cost the engines nothing: the lines
    move on to the next stream and the dead one is muted for whoever else writes to it.
    """

    def __init__(self, streams: Sequence[BinaryIO] | None = None) -> None:
        self._streams = list(streams or (sys.stdout.buffer, sys.stderr.buffer))

    def write(self, data: bytes) -> None:
        """Write ``data`` to the first stream that still takes it; never raises."""
        while self._streams:
            stream = self._streams[0]
            try:
                stream.write(data)
                stream.flush()
                return
            except BlockingIOError:  # a full non-blocking pipe: this line is lost, not the pipe
                return
            except (OSError, ValueError) as exc:
                self._streams.pop(0)
                mute(stream)
                log.warning(
                    "engine output: %s is closed (%s); %s",
                    getattr(stream, "name", "a stream"),
                    exc,
                    "continuing on stderr" if self._streams else "dropping it from now on",
                )


class QuietStreamHandler(logging.StreamHandler[IO[str]]):
    """A log handler that outlives its stream: a closed one is muted, its records dropped."""

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, BlockingIOError):  # a full non-blocking pipe: only this record is lost
            return
        if isinstance(exc, OSError):  # EPIPE, or EIO from a hung-up terminal: for good
            mute(self.stream)
            return
        super().handleError(record)  # a bad format string and the like: say so, as logging does


def settle_std_streams() -> None:
    """Flush stdout and stderr before exiting, muting a closed one (see :func:`mute`)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            mute(stream)


def say(line: str) -> None:
    """A line for the user on stderr, even if nobody reads it any more."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


async def pump(engine: Engine, stream: asyncio.StreamReader, output: EngineOutput) -> None:
    """Copy an engine's output to ours, each line prefixed with its GPU, until the pipe closes.

    It never fails: an engine whose pipe nobody drains blocks on its next log line, and an ended
    pump must not be mistaken for an ended engine.
    """
    prefix = f"[GPU {engine.gpu}] ".encode()
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # longer than LINE_LIMIT: readline dropped what it had buffered
            line = b"(an output line over %d bytes was cut)\n" % LINE_LIMIT
        if not line:
            return
        engine.heard(line.decode(errors="replace").rstrip())
        output.write(prefix + line)
