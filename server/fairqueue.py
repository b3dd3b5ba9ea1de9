"""Work waiting for an engine's window to open: fair across requests, ordered within each.

Every item waiting for a backend is a future in this queue, filed under its *flow* (the request it
belongs to). Openings go round-robin over the flows, and in arrival order within a flow, so a
single item sent by one caller is not stuck behind another caller's batch of a thousand, and a
batch's items still start in request order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Hashable, Iterator
from contextvars import ContextVar

#: The flow of the work running in this context: one per request (see :func:`flow`).
CURRENT_FLOW: ContextVar[Hashable] = ContextVar("editjudge_flow", default=None)


@contextlib.contextmanager
def flow() -> Iterator[None]:
    """Run the block (and the tasks it starts) as one new flow: one request's work."""
    token = CURRENT_FLOW.set(object())
    try:
        yield
    finally:
        CURRENT_FLOW.reset(token)


class FairQueue:
    """Futures waiting for capacity, by flow."""

    def __init__(self) -> None:
        self._flows: dict[Hashable, collections.deque[asyncio.Future[None]]] = {}
        self._turns: collections.deque[Hashable] = collections.deque()  # flows with waiters
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, flow: Hashable, waiter: asyncio.Future[None], *, front: bool = False) -> None:
        """Queue ``waiter``; ``front``: it was woken but found no room, so it keeps its turn."""
        line = self._flows.get(flow)
        if line is None:
            line = self._flows[flow] = collections.deque()
            (self._turns.appendleft if front else self._turns.append)(flow)
        elif front and self._turns[0] != flow:
            self._turns.remove(flow)
            self._turns.appendleft(flow)
        (line.appendleft if front else line.append)(waiter)
        self._size += 1

    async def wait(self, flow: Hashable, timeout: float, *, front: bool = False) -> bool:
        """Wait in line as ``flow`` until woken (True) or ``timeout`` seconds pass (False);
        ``front``: it was woken before but found no room, so it keeps its turn."""
        waiter = asyncio.get_running_loop().create_future()
        self.push(flow, waiter, front=front)
        try:
            # Not asyncio.wait_for: on Python 3.11 it returns a wake-up that lands in the same
            # loop turn as a cancellation and loses the cancellation, so work whose client left
            # or whose deadline passed would take a backend anyway.
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            pass
        except BaseException:
            self._leave(flow, waiter)
            raise
        woken = waiter.done() and not waiter.cancelled()
        if not woken:
            self._leave(flow, waiter)
        return woken

    def _leave(self, flow: Hashable, waiter: asyncio.Future[None]) -> None:
        """Take ``waiter`` out of line; a wake-up it got but will not use goes to the next."""
        if waiter.done() and not waiter.cancelled():
            self.wake(1)
        else:
            waiter.cancel()
            self.remove(flow, waiter)

    def remove(self, flow: Hashable, waiter: asyncio.Future[None]) -> None:
        """Forget ``waiter`` (it timed out or was cancelled); no-op if it was already served."""
        line = self._flows.get(flow)
        if line is None or waiter not in line:
            return
        line.remove(waiter)
        self._size -= 1
        if not line:
            self._drop(flow)

    def wake(self, count: int | None = None) -> None:
        """Wake the next ``count`` waiters in fair order (all when None); each looks for room."""
        left = self._size if count is None else count
        while left > 0 and self._turns:
            flow = self._turns[0]
            line = self._flows[flow]
            waiter = line.popleft()
            self._size -= 1
            if line:
                self._turns.rotate(-1)  # this flow had its turn
            else:
                self._drop(flow)
            if not waiter.done():
                waiter.set_result(None)
                left -= 1

    def _drop(self, flow: Hashable) -> None:
        del self._flows[flow]
        self._turns.remove(flow)
