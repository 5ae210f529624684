"""Regression: more than 100 concurrent runs on the Redis event store failed with "Too many connections".

Every follower of a run blocked in its own XREAD on its own pooled connection, and redis-py's pool
refuses a 101st connection, so the 101st concurrent `POST /stream` got a dead stream. Now a follower
of a run executing in its process reads what the process holds (no Redis read at all), followers of
runs executing elsewhere share one blocking XREAD, and the pool waits for a free connection rather
than failing.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as redis

from rhetor_stream.runs.redis_store import RedisEventStore
from rhetor_stream.runs.store import RUNNING, RunRecord, StoredEvent
from tests.conftest import LiveReader, MakeClient

RUNS = 300
TEXT = " ".join(f"Sentence {n} is here." for n in range(1, 21))


async def test_300_concurrent_runs_all_complete(make_client: MakeClient, redis_url: str) -> None:
    client = await make_client(event_store=redis_url, max_streams=1000, max_streams_per_client=1000)
    body: dict[str, Any] = {"tool_name": "StreamText", "arguments": {"text": TEXT}}

    async def run() -> LiveReader:
        async with client.post("/api/mcp/v2/stream", json=body) as response:
            assert response.status == 200, await response.text()
            reader = LiveReader(response)
            await reader.rest()
            return reader

    readers = await asyncio.gather(*(run() for _ in range(RUNS)))
    for reader in readers:
        assert [event.event for event in reader.events][-2:] == ["complete", "disconnect"], reader.events[-2:]
        assert reader.ids() == list(range(1, len(reader.events) + 1))
        text = "".join(event.json()["content"]["content"] for event in reader.events if event.event == "chunk")
        assert text == TEXT


async def _connections(url: str) -> int:
    async with redis.from_url(url) as probe:
        return len(await probe.client_list())


async def test_followers_of_runs_elsewhere_share_one_blocking_read(redis_url: str) -> None:
    prefix = f"share-{time.monotonic_ns()}"
    executing = RedisEventStore(redis_url, retention=60, max_events=100, prefix=prefix)
    following = RedisEventStore(redis_url, retention=60, max_events=100, prefix=prefix, connections=8)
    await executing.start(on_cancel=lambda run_id: None)
    await following.start(on_cancel=lambda run_id: None)
    try:
        run_ids = [f"run{n}" for n in range(RUNS)]
        for run_id in run_ids:
            await executing.create(RunRecord(run_id, "Wait", RUNNING, time.time()))
        before = await _connections(redis_url)
        reads = [asyncio.ensure_future(following.read(run_id, 0, wait=30.0)) for run_id in run_ids]
        await asyncio.sleep(0.5)  # every follower waits
        assert not any(read.done() for read in reads)
        assert await _connections(redis_url) - before <= 8  # not one per follower
        for run_id in run_ids:
            executing.append(run_id, 1, "chunk", b'{"n":1}')
        assert await asyncio.gather(*reads) == [[StoredEvent(1, "chunk", b'{"n":1}')]] * RUNS
    finally:
        await following.close()
        await executing.close()


async def test_a_new_follower_does_not_wait_out_the_shared_block(redis_url: str) -> None:
    # A socket timeout of 60 s makes the shared XREAD block for 30 s: a follower that joins while it
    # blocks is served at once, or only after its own 20 s wait (an empty answer) without the wake-up.
    prefix = f"wake-{time.monotonic_ns()}"
    executing = RedisEventStore(redis_url, retention=60, max_events=100, prefix=prefix)
    following = RedisEventStore(f"{redis_url}?socket_timeout=60", retention=60, max_events=100,
                                prefix=prefix)
    quick = RedisEventStore(f"{redis_url}?socket_timeout=0.4", retention=60, max_events=100, prefix=prefix)
    for store in (executing, following, quick):
        await store.start(on_cancel=lambda run_id: None)
    try:
        for run_id in ("first", "second", "quiet"):
            await executing.create(RunRecord(run_id, "Wait", RUNNING, time.time()))
        first = asyncio.ensure_future(following.read("first", 0, wait=40.0))
        await asyncio.sleep(0.3)  # the shared read blocks on "first" alone
        second = asyncio.ensure_future(following.read("second", 0, wait=20.0))
        await asyncio.sleep(0.3)
        executing.append("second", 1, "chunk", b"{}")
        assert await second == [StoredEvent(1, "chunk", b"{}")]
        assert not first.done()
        first.cancel()
        # A shared read ends before the socket timeout: a quiet run is an empty answer, not an error.
        assert await quick.read("quiet", 0, wait=1.0) == []
    finally:
        for store in (quick, following, executing):
            await store.close()
