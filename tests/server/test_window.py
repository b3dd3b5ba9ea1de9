"""The adaptive in-flight window: grows while an engine runs everything it is sent, shrinks when
requests pile up in front of its batch."""

from __future__ import annotations

import pytest

from editjudge.server.window import EngineLoad, WindowLimits, next_window, queue_target

LIMITS = WindowLimits(minimum=4, start=32, maximum=256)


def test_a_full_window_on_an_engine_that_runs_it_all_grows_while_work_waits() -> None:
    load = EngineLoad(in_flight=32, running=30, demand=True)
    assert next_window(32, load, LIMITS) == 40
    # nothing waiting in the router: no reason to grow
    assert next_window(32, EngineLoad(in_flight=32, running=30, demand=False), LIMITS) == 32
    # a window that is not full tells nothing about more
    assert next_window(32, EngineLoad(in_flight=10, running=10, demand=True), LIMITS) == 32


def test_a_queue_in_front_of_the_batch_shrinks_the_window() -> None:
    # 64 sent, 20 running: 44 queued (waiting or still being preprocessed) > 2 x target(20)=10
    assert next_window(64, EngineLoad(in_flight=64, running=20, demand=True), LIMITS) == 54
    # a queue between the target (12 beside 48 running) and twice it: the window holds
    assert next_window(64, EngineLoad(in_flight=64, running=48, demand=True), LIMITS) == 64


@pytest.mark.parametrize("running", [0, 3, 40, 200])
def test_the_window_stays_within_its_bounds(running: int) -> None:
    tiny = WindowLimits(4, 4, 4)
    assert next_window(4, EngineLoad(200, running, True), tiny) == 4
    assert next_window(5, EngineLoad(500, running, True), LIMITS) >= LIMITS.minimum


def test_a_full_window_at_its_ceiling_stays_there() -> None:
    huge = WindowLimits(4, 256, 256)
    assert next_window(256, EngineLoad(256, 256, True), huge) == 256


def test_the_queue_target_scales_with_the_batch() -> None:
    assert queue_target(0) == 4 and queue_target(16) == 4 and queue_target(100) == 25


def test_steady_state_tracks_what_the_engine_can_run() -> None:
    """A toy engine that can run at most 48 requests: from a start of 8 the window climbs
    within a few samples and settles just above 48, never near the ceiling."""
    window, seen = 8, []
    for _ in range(40):
        in_flight = window  # the router keeps every window full (it has work queued)
        running = min(in_flight, 48)
        window = next_window(window, EngineLoad(in_flight, running, demand=True), LIMITS)
        seen.append(window)
    assert seen[10] > 48
    assert all(w <= 48 + 2 * queue_target(48) + 12 for w in seen)
