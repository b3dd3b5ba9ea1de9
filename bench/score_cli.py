"""``editjudge score`` run as a user runs it, and measured from the outside.

The command is the user's: ``editjudge score INPUT -o OUT --server URL`` plus only the options a
run names (none for the user path). While it runs, the results file is watched (it gets a line per
finished item), which gives the progress over time: from it come the wall-clock rate a user sees
and the steady rate between 10% and 90% of the items, without the start (Python, reading the
input, the first batches filling the engines) and the tail (the last batches draining them).
Afterwards every result line is read: how many parsed (``ok``) and the error codes of the rest.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import ROOT, child_env

MIN_WINDOW_S, MIN_WINDOW_ITEMS = 1.0, 20  # a shorter steady window would be noise
PLAN = re.compile(r"(\d+) request\(s\) of up to (\d+) items in flight[^\n]*")


@dataclass
class ScoreRun:
    """One ``editjudge score`` process: what it was, how it went, what it wrote."""

    command: list[str]
    rc: int
    started: float  # epoch seconds
    seconds: float
    progress: list[tuple[float, int]] = field(default_factory=list)  # (epoch s, results so far)
    results: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""  # what it printed (stdout and stderr)

    @property
    def in_flight(self) -> int | None:
        """The items the client kept in flight, from the plan it printed."""
        return _in_flight(PLAN.search(self.log))

    def window(self, low: float = 0.1, high: float = 0.9) -> tuple[float, float, int] | None:
        """(start, end, items) between ``low`` and ``high`` of the results; None when that is too
        little to be a rate (results come a batch at a time), or when the run had no steady state:
        with fewer than twice the items the client keeps in flight, nearly all of them are sent at
        once, and the window would time their completions' burst, not a rate."""
        total, in_flight = len(self.results), self.in_flight
        if in_flight and total < 2 * in_flight:
            return None
        a = next(((t, n) for t, n in self.progress if n >= low * total), None)
        b = next(((t, n) for t, n in self.progress if n >= high * total), None)
        if not (a and b) or b[0] - a[0] < MIN_WINDOW_S or b[1] - a[1] < MIN_WINDOW_ITEMS:
            return None
        return a[0], b[0], b[1] - a[1]

    def summary(self) -> dict[str, Any]:
        """What the run's JSON records: rates, parse rate, errors by code, the client's plan."""
        statuses = Counter(
            "ok" if r.get("status") == "ok" else (r.get("error") or {}).get("code", "?")
            for r in self.results
        )
        samples: dict[str, str] = {}
        for r in self.results:
            code = (r.get("error") or {}).get("code")
            if code and code not in samples:
                samples[code] = (
                    f"{r['error'].get('message', '')[:200]} | raw: {r.get('raw')!s:.200}"
                )
        items, ok = len(self.results), statuses.pop("ok", 0)
        plan = PLAN.search(self.log)
        steady = self.window()
        first = next((t for t, n in self.progress if n > 0), None)
        return {
            "command": self.command,
            "rc": self.rc,
            "cli_plan": plan.group(0) if plan else None,
            "in_flight": _in_flight(plan),
            "seconds": round(self.seconds, 2),
            "first_result_s": round(first - self.started, 2) if first else None,
            "items": items,
            "items_per_s": round(items / self.seconds, 2) if self.seconds > 0 else None,
            "steady_items_per_s": round(steady[2] / (steady[1] - steady[0]), 2) if steady else None,
            "ok": ok,
            "parse_rate": round(ok / items, 4) if items else None,
            "errors": dict(sorted(statuses.items())),
            "error_samples": samples,
            "output_tail": None if self.rc == 0 else self.log[-2000:],
        }


def _in_flight(plan: re.Match[str] | None) -> int | None:
    """Requests x items per request, from the plan line ``editjudge score`` printed."""
    return int(plan.group(1)) * int(plan.group(2)) if plan else None


def _count_lines(path: Path, done: int, offset: int) -> tuple[int, int]:
    """Lines in ``path`` from byte ``offset`` on, added to ``done``; (lines, new offset)."""
    if not path.exists():
        return done, offset
    with path.open("rb") as f:
        f.seek(offset)
        chunk = f.read()
    return done + chunk.count(b"\n"), offset + len(chunk)


def run_score(
    input_file: Path,
    output: Path,
    server: str,
    options: list[str],
    log: Path,
    timeout_s: float = 3600,
) -> ScoreRun:
    """Run ``editjudge score`` (no ``EDITJUDGE_*`` from this environment), watching ``output``."""
    output.unlink(missing_ok=True)
    command = [sys.executable, "-m", "editjudge", "score", str(input_file), "-o", str(output)]
    command += ["--server", server, *options]
    started, t0 = time.time(), time.monotonic()
    progress: list[tuple[float, int]] = []
    lines, offset = 0, 0
    with log.open("wb") as err:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=child_env(), stdout=err, stderr=subprocess.STDOUT
        )
        while proc.poll() is None and time.monotonic() - t0 < timeout_s:
            time.sleep(0.25)
            lines, offset = _count_lines(output, lines, offset)
            if not progress or progress[-1][1] != lines:
                progress.append((time.time(), lines))
        if proc.poll() is None:
            proc.kill()
        rc = proc.wait()
    seconds = time.monotonic() - t0
    lines, offset = _count_lines(output, lines, offset)
    progress.append((time.time(), lines))
    text = output.read_text(errors="replace") if output.exists() else ""
    results = [json.loads(line) for line in text.splitlines() if line.strip()]
    return ScoreRun(
        command, rc, started, seconds, progress, results, log.read_text(errors="replace")
    )
