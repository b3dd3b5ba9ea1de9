from __future__ import annotations

import pytest

from editjudge.server.admission import Budget
from editjudge.server.errors import Overloaded


def test_budget_counts_and_releases() -> None:
    budget = Budget(max_items=10, max_bytes=1000)
    with budget.admit(6, 100):
        with budget.admit(4, 100):
            assert (budget.items, budget.bytes) == (10, 200)
        with pytest.raises(Overloaded) as info, budget.admit(5, 0):
            pass
        assert info.value.status == 429 and info.value.retry_after_s
        with pytest.raises(Overloaded), budget.admit(1, 901):
            pass
    assert (budget.items, budget.bytes) == (0, 0)


def test_one_oversized_request_is_admitted_when_idle() -> None:
    budget = Budget(max_items=10, max_bytes=10)
    with budget.admit(50, 50):
        assert budget.items == 50


def test_a_body_being_read_holds_bytes_so_the_budget_is_not_idle() -> None:
    budget = Budget(max_items=10, max_bytes=1000)
    with budget.admit(0, 900):  # a request body being read: no items yet
        with pytest.raises(Overloaded), budget.admit(0, 200):
            pass
        with budget.admit(1, 50):
            assert (budget.items, budget.bytes) == (1, 950)
    assert (budget.items, budget.bytes) == (0, 0)
