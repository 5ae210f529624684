"""Regression: once Redis had cut the pub/sub connection, cancelling from another process no longer
reached the process that runs the work.

The cancel listener ended with the ConnectionError (unseen: nobody awaited it), so a Redis restart or
a network blip silently turned `DELETE /runs/{id}` on another process into a no-op. Now it listens
again, and a request published while nobody listened is found on the run's own record.
"""
from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from rhetor_stream.runs.redis_store import RedisEventStore
from rhetor_stream.runs.store import RUNNING, RunRecord
from tests.conftest import eventually


@pytest.fixture
async def asking(redis_url: str) -> AsyncIterator[RedisEventStore]:
    """The store of the process a client asks to cancel (not the one running the work)."""
    store = RedisEventStore(redis_url, retention=60, max_events=100, prefix="channel")
    await store.start(on_cancel=lambda run_id: None)
    yield store
    await store.close()


async def test_cancellation_still_arrives_after_redis_cut_the_channel(redis_url: str,
                                                                      asking: RedisEventStore) -> None:
    heard: list[str] = []
    executing = RedisEventStore(redis_url, retention=60, max_events=100, prefix="channel")
    await executing.start(on_cancel=heard.append)
    admin = redis.from_url(redis_url)
    try:
        await executing.create(RunRecord("cut", "Wait", RUNNING, time.time()))
        await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await asking.request_cancel("cut")

        async def arrived() -> bool:
            return "cut" in heard

        await eventually(arrived, what="the cancellation reached the executing process")
    finally:
        await admin.aclose()
        await executing.close()


async def test_a_cancel_published_to_nobody_is_found_on_the_run(redis_url: str,
                                                                asking: RedisEventStore) -> None:
    heard: list[str] = []
    executing = RedisEventStore(redis_url, retention=60, max_events=100, prefix="channel")
    try:
        # The run exists but its process is not subscribed yet, as while Redis comes back.
        await executing.create(RunRecord("missed", "Wait", RUNNING, time.time()))
        await asking.request_cancel("missed")
        await executing.start(on_cancel=heard.append)

        async def arrived() -> bool:
            return "missed" in heard

        await eventually(arrived, what="the missed cancellation was found")
        await asking.request_cancel("no-such-run")  # flags nothing: no hash without expiry is left
        assert await asking.get("no-such-run") is None
    finally:
        await executing.close()
