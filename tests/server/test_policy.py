from __future__ import annotations

import collections

import pytest

from editjudge.server.policy import (
    BackendLoad,
    affinity,
    least_outstanding,
    rendezvous_order,
    round_robin,
)


def loads(*in_flight: int, served: tuple[int, ...] | None = None) -> list[BackendLoad]:
    served = served or tuple(0 for _ in in_flight)
    pairs = enumerate(zip(in_flight, served, strict=True))
    return [BackendLoad(f"http://b{i}", f, s) for i, (f, s) in pairs]


def test_least_outstanding_picks_fewest_in_flight() -> None:
    assert least_outstanding(loads(3, 1, 2)) == 1


def test_least_outstanding_breaks_ties_by_served_then_order() -> None:
    assert least_outstanding(loads(1, 1, 1, served=(5, 2, 2))) == 1
    assert least_outstanding(loads(0, 0)) == 0


def test_round_robin_cycles() -> None:
    backends = loads(9, 0, 0)
    assert [round_robin(backends, c) for c in range(5)] == [0, 1, 2, 0, 1]


def test_policies_refuse_empty_input() -> None:
    for fn in (
        lambda: least_outstanding([]),
        lambda: round_robin([], 0),
        lambda: affinity([], "k", 0.1),
    ):
        with pytest.raises(ValueError):
            fn()


def test_affinity_is_stable_for_a_key_and_spreads_keys() -> None:
    backends = loads(0, 0, 0, 0)
    picks = {key: affinity(backends, key, 0.25) for key in (f"src-{i}" for i in range(200))}
    again = {key: affinity(backends, key, 0.25) for key in picks}
    assert picks == again
    counts = collections.Counter(picks.values())
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 25


def test_affinity_follows_rendezvous_order() -> None:
    urls = [f"http://b{i}" for i in range(4)]
    first = rendezvous_order(urls, "abc")[0]
    assert affinity(loads(0, 0, 0, 0), "abc", 0.0) == urls.index(first)


def test_affinity_bounded_load_falls_back_when_preferred_is_hot() -> None:
    urls = [f"http://b{i}" for i in range(3)]
    preferred = urls.index(rendezvous_order(urls, "key")[0])
    in_flight = [2, 2, 2]
    in_flight[preferred] = 10  # far above (1 + eps) x mean
    pick = affinity(loads(*in_flight), "key", 0.25)
    assert pick != preferred


def test_affinity_removing_a_backend_moves_only_its_keys() -> None:
    four = loads(0, 0, 0, 0)
    three = four[:3]
    moved = 0
    for i in range(300):
        key = f"k{i}"
        before = four[affinity(four, key, 10.0)].url
        after = three[affinity(three, key, 10.0)].url
        if before != after:
            assert before == "http://b3"  # only keys of the removed backend move
            moved += 1
    assert 40 < moved < 120


def test_affinity_without_key_is_least_outstanding() -> None:
    assert affinity(loads(4, 0, 3), None, 0.1) == 1


def test_affinity_bound_counts_the_items_weight() -> None:
    urls = [f"http://b{i}" for i in range(2)]
    preferred = urls.index(rendezvous_order(urls, "k")[0])
    in_flight = [4, 4]
    # total with a weight-2 item = 10, mean 5, bound ceil(5 * 1.2) = 6: 4 + 2 fits
    assert affinity(loads(*in_flight), "k", 0.2, weight=2) == preferred
    in_flight[preferred] = 6  # weight 2: total 12, bound ceil(7.2) = 8, 6 + 2 fits
    assert affinity(loads(*in_flight), "k", 0.2, weight=2) == preferred
    # weight 3: total 13, bound ceil(7.8) = 8, 6 + 3 does not fit
    assert affinity(loads(*in_flight), "k", 0.2, weight=3) != preferred
