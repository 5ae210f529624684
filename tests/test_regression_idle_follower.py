"""Regression: a follower of a run that stayed silent for 5 s failed with a Redis TimeoutError.

redis-py 8 reads with a 5 s socket timeout by default, and the follower blocked in XREAD for exactly
5 s, so every quiet run (a model thinking, a process that died) broke its subscribers' streams.
With the default timeout, test_scale_out's lost-run test follows a silent run past that 5 s poll.
"""
from __future__ import annotations

import time

from rhetor_stream.runs.redis_store import RedisEventStore
from rhetor_stream.runs.store import RUNNING, RunRecord


async def test_a_blocking_read_ends_before_the_socket_timeout(redis_url: str) -> None:
    store = RedisEventStore(f"{redis_url}?socket_timeout=0.4", retention=60, max_events=100,
                            prefix=f"idle-{time.monotonic_ns()}")
    await store.start(on_cancel=lambda run_id: None)
    try:
        await store.create(RunRecord("quiet", "Wait", RUNNING, time.time()))
        assert await store.read("quiet", 0, wait=1.0) == []  # nothing happened: an empty answer, no error
    finally:
        await store.close()

