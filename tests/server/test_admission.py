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


def test_a_hold_follows_what_the_request_holds_and_releases_everything() -> None:
    budget = Budget(max_items=10, max_bytes=1000, max_upload_bytes=300)
    hold = budget.hold()
    hold.charge(nbytes=200, uploading=100)  # 100 bytes received, counted twice
    assert (budget.bytes, budget.uploading) == (200, 100)
    hold.parsing()  # the body is complete: no longer an upload, the same bytes
    assert (budget.bytes, budget.uploading) == (200, 0)
    hold.settle(3, 120)  # scoring: three items and their images' base64 text
    assert (budget.items, budget.bytes, budget.uploading) == (3, 120, 0)
    hold.release()
    assert (budget.items, budget.bytes, budget.uploading) == (0, 0, 0)
    hold.charge(nbytes=50)  # a worker thread finishing after the request ended
    assert budget.bytes == 0


def test_unfinished_bodies_are_held_to_their_share_and_finished_work_still_fits() -> None:
    budget = Budget(max_items=10, max_bytes=1000, max_upload_bytes=300)
    slow = [budget.hold() for _ in range(3)]
    for hold in slow:
        hold.charge(nbytes=200, uploading=100)
    with pytest.raises(Overloaded):  # a fourth upload would pass the upload share
        budget.hold().charge(nbytes=2, uploading=1)
    with budget.admit(2, 350):  # but a parsed request still fits in the rest of the budget
        assert budget.bytes == 950
    assert budget.uploading == 300


def test_a_declared_length_that_cannot_fit_is_refused_before_reading() -> None:
    budget = Budget(max_items=10, max_bytes=1000, max_upload_bytes=500)
    with budget.admit(1, 600):
        hold = budget.hold()
        with pytest.raises(Overloaded):
            hold.require(nbytes=2 * 300, uploading=300)
        hold.require(nbytes=2 * 200, uploading=200)  # fits: nothing charged by asking
        assert budget.bytes == 600
    budget.hold().require(nbytes=5000, uploading=5000)  # alone: a large body is still read


def test_full_budget_refuses_before_any_body_is_read() -> None:
    budget = Budget(max_items=2, max_bytes=1000)
    budget.refuse_if_full()  # idle: never refused
    with budget.admit(2, 10), pytest.raises(Overloaded):
        budget.refuse_if_full()
    with budget.admit(1, 1000), pytest.raises(Overloaded):
        budget.refuse_if_full()


def test_borrowed_decode_memory_counts_only_while_the_decode_runs() -> None:
    budget = Budget(max_items=10, max_bytes=1000)
    other = budget.hold()
    other.charge(nbytes=500)
    hold = budget.hold()
    with hold.borrow(400):
        assert budget.bytes == 900
        with pytest.raises(Overloaded), hold.borrow(200):
            pass
    assert budget.bytes == 500
