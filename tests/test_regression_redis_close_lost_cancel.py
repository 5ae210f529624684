"""Regression: a Redis store whose background task lost its cancellation never finished closing.

`close()` cancelled the lease-renewing task (and the listener and writer) once and waited for it.
On Python 3.11 redis-py 8 sends every command through `asyncio.wait_for`, which loses a cancellation
that arrives just as the command completes: the task went on renewing the lease every few seconds,
and the server's shutdown waited for it for ever. Now a task that did not end is cancelled again
until it does (`rhetor_stream.tasks.cancel_and_wait`). Here the renewing task swallows its first
cancellation the way wait_for does.
"""
from __future__ import annotations

import asyncio
import time

from rhetor_stream.runs.redis_store import RedisEventStore


async def test_close_ends_a_task_that_lost_its_cancellation(redis_url: str) -> None:
    store = RedisEventStore(redis_url, retention=60, max_events=100, prefix=f"lost-{time.monotonic_ns()}",
                            lease=3600.0)
    await store.start(on_cancel=lambda run_id: None)
    cancellations = 0

    async def renewing() -> None:
        nonlocal cancellations
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancellations += 1
                if cancellations > 1:
                    raise
                # lost, as asyncio.wait_for loses one on Python 3.11: the loop goes on

    assert store._renewing is not None
    store._renewing.cancel()
    await asyncio.wait({store._renewing})
    store._renewing = asyncio.create_task(renewing())
    await asyncio.sleep(0)
    await asyncio.wait_for(store.close(), 10)
    assert cancellations == 2 and store._renewing.done()
