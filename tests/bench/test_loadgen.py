"""The one load generator: every request counted once, time windows, open loop, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import loadgen, report
from bench.procs import Server, fake_engine, free_port
from bench.workload import BodySource, TemplateSource, chat_template


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    logs = tmp_path_factory.mktemp("engines")
    servers = [fake_engine(free_port(), 0.01, logs) for _ in range(2)]
    try:
        for s in servers:
            s.wait_ready()
        yield servers
    finally:
        for s in servers:
            s.stop()


def chat_urls(engines: list[Server]) -> tuple[str, ...]:
    return tuple(f"{e.url}/v1/chat/completions" for e in engines)


def test_closed_loop_over_tasks_counts_each_request_once(engines: list[Server]) -> None:
    source = TemplateSource(chat_template(), b'"choices"', seed=3)
    job = loadgen.Job(chat_urls(engines), source, workers=2, concurrency=8, tasks=41)
    outcomes = loadgen.run(job)
    t = report.tally(outcomes)
    assert t["items"] == t["ok"] == 41 and t["errors"] == {}
    assert sum(o.sent for o in outcomes) == 41
    assert set(t["share"]) == set(chat_urls(engines))  # least-outstanding spreads the load
    assert t["seconds"] > 0 and t["items_per_s"] > 0 and t["p50_s"] is not None


def test_time_window_and_open_loop(engines: list[Server]) -> None:
    source = TemplateSource(chat_template(), b'"choices"')
    closed = loadgen.Job(chat_urls(engines), source, concurrency=4, warmup_s=0.3, duration_s=1)
    (out,) = loadgen.run(closed)
    assert out.latencies and out.errors == 0 and out.cpu_s > 0 and not out.lags
    started: list[float] = []
    rate = loadgen.Job(chat_urls(engines), source, workers=2, rate=40, duration_s=1)
    outcomes = loadgen.run(rate, on_start=started.append)
    m = report.Measurement.of(outcomes, 1.0, {}, 40)
    assert len(started) == 1
    assert 30 <= m.ok <= 42 and m.errors == 0  # ~40 scheduled in the 1 s window
    assert all(o.lags for o in outcomes) and m.lag_p99_ms >= 0


def test_errors_are_counted_by_code_with_a_sample(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/score"  # nothing listens there
    job = loadgen.Job((dead,), BodySource([b"{}"]), concurrency=2, tasks=3)
    t = report.tally(loadgen.run(job))
    assert t["ok"] == 0 and sum(t["errors"].values()) == 3
    assert "Connect" in next(iter(t["errors"])) and t["error_sample"]


class Broken(BodySource):
    def prepare(self, indices: range) -> None:
        raise ValueError("cannot build bodies")


def test_a_failing_worker_fails_the_run() -> None:
    job = loadgen.Job(("http://127.0.0.1:9/x",), Broken([b"{}"]), workers=2, tasks=4)
    with pytest.raises(RuntimeError, match="cannot build bodies"):
        loadgen.run(job)
