"""The router's own queue: fair across requests, in order within one."""

from __future__ import annotations

import asyncio

from editjudge.server.fairqueue import CURRENT_FLOW, FairQueue, flow


async def test_openings_go_round_robin_across_flows_and_in_order_within_one() -> None:
    queue = FairQueue()
    loop = asyncio.get_running_loop()
    woken: list[str] = []
    big = [loop.create_future() for _ in range(4)]
    small = [loop.create_future()]
    for i, f in enumerate(big):
        f.add_done_callback(lambda _, i=i: woken.append(f"big{i}"))
        queue.push("big", f)
    small[0].add_done_callback(lambda _: woken.append("small0"))
    queue.push("small", small[0])
    assert len(queue) == 5
    queue.wake(3)
    await asyncio.sleep(0)
    assert woken == ["big0", "small0", "big1"]  # the single item did not wait behind the batch
    queue.wake()
    await asyncio.sleep(0)
    assert woken[3:] == ["big2", "big3"] and len(queue) == 0


async def test_a_waiter_that_found_no_room_keeps_its_turn() -> None:
    queue = FairQueue()
    loop = asyncio.get_running_loop()
    a, b, again = loop.create_future(), loop.create_future(), loop.create_future()
    queue.push("A", a)
    queue.push("B", b)
    queue.wake(1)
    assert a.done() and not b.done()
    queue.push("A", again, front=True)  # A was woken, but the window was full
    queue.wake(1)
    assert again.done() and not b.done()


async def test_removed_and_cancelled_waiters_are_skipped() -> None:
    queue = FairQueue()
    loop = asyncio.get_running_loop()
    gone, cancelled, live = loop.create_future(), loop.create_future(), loop.create_future()
    for f in (gone, cancelled, live):
        queue.push("x", f)
    queue.remove("x", gone)
    queue.remove("x", gone)  # twice is harmless
    cancelled.cancel()
    queue.wake(1)
    assert live.done() and len(queue) == 0


async def test_each_flow_block_has_its_own_token_and_tasks_inherit_it() -> None:
    async def seen() -> object:
        return CURRENT_FLOW.get()

    assert CURRENT_FLOW.get() is None
    with flow():
        outer = CURRENT_FLOW.get()
        inner = await asyncio.gather(seen(), seen())
    with flow():
        other = CURRENT_FLOW.get()
    assert outer is not None and inner == [outer, outer] and other is not outer
    assert CURRENT_FLOW.get() is None
