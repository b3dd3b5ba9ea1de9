"""Which backend gets the next item: pure functions over a snapshot of backend load, no I/O.

Every policy receives the *eligible* backends only (healthy, circuit closed, with room), so it never
has to know about health, and returns an index into that sequence.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BackendLoad:
    """What a policy may look at."""

    url: str
    in_flight: int
    served: int


def least_outstanding(backends: Sequence[BackendLoad]) -> int:
    """Fewest requests in flight; ties go to the one that has served least, then list order."""
    _require(backends)
    return min(range(len(backends)), key=lambda i: (backends[i].in_flight, backends[i].served, i))


def round_robin(backends: Sequence[BackendLoad], counter: int) -> int:
    """The ``counter``-th backend, cycling."""
    _require(backends)
    return counter % len(backends)


def affinity(
    backends: Sequence[BackendLoad], key: str | None, epsilon: float, weight: int = 1
) -> int:
    """Consistent hashing on ``key`` with bounded load.

    Backends are ranked by rendezvous (highest-random-weight) hashing, so one key keeps its
    backend while the set changes little. The first backend in that ranking whose load stays
    within ``(1 + epsilon)`` times the mean load (counting this request's ``weight`` slots) wins;
    if none does, the least-loaded one does. Without a key this is least-outstanding.
    """
    _require(backends)
    if key is None:
        return least_outstanding(backends)
    total = sum(b.in_flight for b in backends) + weight
    # An idle backend always fits one item, however small the mean.
    bound = max(weight, math.ceil(total / len(backends) * (1.0 + epsilon)))
    weights = [_weight(key, b.url) for b in backends]
    for i in sorted(range(len(backends)), key=weights.__getitem__, reverse=True):
        if backends[i].in_flight + weight <= bound:
            return i
    return least_outstanding(backends)


def rendezvous_order(urls: Sequence[str], key: str) -> list[str]:
    """The affinity ranking of ``urls`` for ``key`` (most preferred first); for diagnostics."""
    return sorted(urls, key=lambda url: _weight(key, url), reverse=True)


def _weight(key: str, url: str) -> int:
    digest = hashlib.blake2b(f"{key}|{url}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _require(backends: Sequence[BackendLoad]) -> None:
    if not backends:
        raise ValueError("a policy needs at least one eligible backend")
