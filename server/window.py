"""How much work each engine holds: its in-flight window, steered by the engine's own queue.

A vLLM engine does its best work with a batch that is as large as it can run and a short queue
of requests ready to join it. Requests beyond that do not run sooner: they wait in the engine,
where its API server preprocesses their images eagerly and takes CPU from the scheduler (measured
on 4xH200 with a dummy Qwen3-VL-30B-A3B: 512 items in flight kept the GPUs 54-59% busy, 64 kept
them 80-83% busy). So the router holds the excess itself, in its own fair queue, and lets each
engine have a window of requests that this module steers, like congestion control steers by
delay:

* the engine reports how many requests it runs (``vllm:num_requests_running``); everything else
  the router has sent it is queued there (waiting to be scheduled, or still being preprocessed);
* while the router has work waiting and the engine's queue is shorter than
  :func:`queue_target`, the window grows by a quarter;
* when the engine's queue is longer than twice the target, the window shrinks by a sixth.

Growth is faster than shrinking so that a new run reaches a large batch within seconds, and the
shrink is gentle so that one sample taken between two scheduler steps cannot collapse the window.

A decode-heavy workload lets the running batch grow with the window, so the window grows with it;
a prefill- or preprocessing-bound one fills the queue instead, so the window stays just above what
the engine runs. Pure functions; :mod:`editjudge.server.pool` applies them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowLimits:
    """Bounds of an engine's window, in requests (an item holds one per protocol call)."""

    minimum: int = 4
    start: int = 32
    maximum: int = 256


@dataclass(frozen=True)
class EngineLoad:
    """One look at an engine: what the router has in flight there, and what the engine runs."""

    in_flight: int
    running: int
    demand: bool  # the router has work waiting for a window to open

    @property
    def queued(self) -> int:
        """Requests the router has sent that the engine does not run yet."""
        return max(0, self.in_flight - self.running)


def queue_target(running: int) -> int:
    """Requests worth keeping ready beside a batch of ``running``: enough that a finished request
    is replaced at once, even while the replacement's images are still being preprocessed."""
    return max(4, math.ceil(running / 4))


def next_window(window: int, load: EngineLoad, limits: WindowLimits) -> int:
    """The window after observing ``load`` (see the module docstring)."""
    target = queue_target(load.running)
    if load.queued > 2 * target:
        return max(limits.minimum, window - max(1, window // 6))
    if load.demand and load.in_flight >= window - 1 and load.queued < target:
        return min(limits.maximum, window + max(1, window // 4))
    return window
