"""Regression: a Redis that still held runs written in the first layout (one stream entry per event,
fields `e` and `d`) made the batched layout's reader fail on them (a KeyError for every read).

During an upgrade both layouts meet in one Redis: a process of the previous release, or its runs
within their retention. The batched layout's keys carry `v2`, so each version sees only its own runs:
an old run is unknown here, as it would be once it expired, never misread.
"""
from __future__ import annotations

import time

import redis.asyncio as redis

from rhetor_stream.runs.redis_store import RedisEventStore


async def test_a_run_in_the_first_layout_is_unknown_not_misread(redis_url: str) -> None:
    prefix = f"old-{time.monotonic_ns()}"
    admin = redis.from_url(redis_url)
    await admin.hset(f"{prefix}:run:old", mapping={"tool_name": "Echo", "status": "running",
                                                   "created": time.time(), "owner": ""})
    await admin.xadd(f"{prefix}:run:old:events", {"e": "connected", "d": b'{"run_id":"old"}'}, id="0-1")
    store = RedisEventStore(redis_url, retention=60, max_events=100, prefix=prefix)
    await store.start(on_cancel=lambda run_id: None)
    try:
        assert await store.get("old") is None
        assert await store.read("old", 0, wait=0) == []
        assert await store.last_seq("old") == 0
    finally:
        await store.close()
        await admin.delete(f"{prefix}:run:old", f"{prefix}:run:old:events")
        await admin.aclose()
