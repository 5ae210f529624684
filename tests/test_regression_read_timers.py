"""Regression: every wait of a memory store read left a cancelled timer in the event loop.

A follower of a busy run waits for each next event with `read(..., wait=5)`; each wait armed its own
5-second timer, and the event that woke it cancelled the timer, which asyncio keeps in its heap until
its time (asyncio drops cancelled timers from the head of its heap only, and a server always has
earlier ones: the other streams' ticks): one per event for five seconds on every open stream. Now a
log has one wake-up timer that its readers share, and nothing is cancelled.
"""
from __future__ import annotations

import asyncio
import time

from rhetor_stream.runs.memory import MemoryEventStore
from rhetor_stream.runs.store import RUNNING, RunRecord

EVENTS = 60


async def test_reads_woken_by_events_leave_no_timers_behind() -> None:
    store = MemoryEventStore(retention=300, max_events=1000, max_bytes=1 << 20)
    await store.create(RunRecord("busy", "Echo", RUNNING, time.time()))
    loop = asyncio.get_running_loop()
    earlier = loop.call_later(4.0, lambda: None)  # what a server always has: a timer due before theirs
    before = len(loop._scheduled)  # type: ignore[attr-defined]  # the loop's timer heap, what this is about

    async def follow() -> int:
        after = 0
        while after < EVENTS:
            events = await store.read("busy", after, wait=5.0)
            after = events[-1].seq if events else after
        return after

    reader = asyncio.ensure_future(follow())
    for seq in range(1, EVENTS + 1):
        await asyncio.sleep(0)  # the reader is waiting again
        store.append("busy", seq, "chunk", b"{}")
    assert await reader == EVENTS
    assert len(loop._scheduled) - before <= 2  # type: ignore[attr-defined]  # was one per event
    earlier.cancel()
