"""The CLI's output file: one JSON result per line, appended as results arrive.

Crash safety: every result is written as one line and flushed to the OS at once (a killed process
loses nothing it reported), and fsync'ed with the first result a second or more after the last
fsync, and on close (a power cut loses at most about a second's worth of results). A crash in the
middle of a write can leave an incomplete last line; on the next run that line is cut off and its
item scored again. Re-running skips every id already in the file, so an interrupted run neither
duplicates nor loses a result. An exclusive lock keeps two runs from appending to the same file at
once.

The file is only ever appended to. An id may appear on several lines (``--retry-errors`` appends a
new result for an item whose result was an error): the last complete line for an id is its result,
and supersedes every earlier one, for resuming as for the summary.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from pydantic import ValidationError

from ._exceptions import EditJudgeError
from ._models import ScoreResult

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent runs are the user's business
    fcntl = None  # type: ignore[assignment]

_FSYNC_EVERY_S = 1.0


class ResultFileError(EditJudgeError):
    """The output file cannot be read back or written."""


class ResultLog:
    """Open with ``with ResultLog(path) as log:``; ``log.saved`` holds the latest result of each id
    already there (and is kept up to date by :meth:`append`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saved: dict[str, ScoreResult] = {}
        self.repaired = False  # an incomplete last line was cut off
        self.written = 0
        self._fh: IO[bytes] | None = None
        self._synced = time.monotonic()

    def __enter__(self) -> ResultLog:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = self.path.open("a+b")
        except OSError as exc:
            raise ResultFileError(f"cannot open {self.path}: {exc.strerror}") from None
        self._fh = fh
        try:
            _lock(fh, self.path)
            self._recover(fh)
        except BaseException:
            fh.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def append(self, result: ScoreResult) -> None:
        """Write ``result`` as one line and flush it to the OS."""
        assert self._fh is not None, "ResultLog is not open"
        try:
            self._fh.write(result.model_dump_json().encode() + b"\n")
            self._fh.flush()
            now = time.monotonic()
            if now - self._synced >= _FSYNC_EVERY_S:
                os.fsync(self._fh.fileno())
                self._synced = now
        except OSError as exc:  # e.g. a full disk: stop, keep what is saved, resume later
            raise EditJudgeError(f"cannot write {self.path}: {exc.strerror}") from None
        self.saved[str(result.id)] = result
        self.written += 1

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fh.close()  # also releases the lock

    def _recover(self, fh: IO[bytes]) -> None:
        """Load complete lines; cut off an incomplete last line left by an interrupted write."""
        fh.seek(0)
        good_end = 0
        for number, line in enumerate(fh, 1):
            complete = line.endswith(b"\n")
            result = _parse(line)
            if result is None and line.strip():
                if complete:
                    raise ResultFileError(
                        f"{self.path}:{number} is not a result line; fix or move the file"
                    )
                fh.truncate(good_end)
                self.repaired = True
                break
            if result is not None:  # a later line for an id supersedes an earlier one
                self.saved[str(result.id)] = result
            if not complete:  # a whole result whose newline was lost: add it
                fh.write(b"\n")
            good_end += len(line)
        fh.flush()
        fh.seek(0, os.SEEK_END)


def read_results(path: Path) -> list[ScoreResult]:
    """The results in a JSONL file, without changing it (a run may still be writing to it).

    A later line for the same id replaces an earlier one, in the earlier one's place. An
    incomplete last line (a write in progress or cut off) is left out; any other line that is
    not a result is a :class:`ResultFileError` naming it.
    """
    try:
        lines = path.read_bytes().splitlines(keepends=True)
    except OSError as exc:
        raise ResultFileError(f"cannot read {path}: {exc.strerror}") from None
    results: dict[str, ScoreResult] = {}
    for number, line in enumerate(lines, 1):
        result = _parse(line)
        if result is not None:
            results[str(result.id)] = result
        elif line.strip() and (line.endswith(b"\n") or number < len(lines)):
            raise ResultFileError(f"{path}:{number} is not a result line")
    return list(results.values())


def _parse(line: bytes) -> ScoreResult | None:
    try:
        data = json.loads(line)
        if not isinstance(data, dict) or data.get("id") is None:
            return None
        return ScoreResult.model_validate(data)
    except (ValueError, ValidationError):
        return None


def _lock(fh: IO[bytes], path: Path) -> None:
    if fcntl is None:
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ResultFileError(f"{path} is in use by another editjudge run") from None
