"""Redis going away or losing its data: clear 503s that name the problem, health that says so, never
a 500, and running runs that find their footing again. (The regression tests
test_regression_store_blip_*.py restart Redis under running streams.)"""
from __future__ import annotations

import asyncio
import time

import redis.asyncio as redis

from rhetor_stream.runs.redis_store import RedisEventStore
from rhetor_stream.runs.store import RUNNING, RunRecord
from tests.conftest import DisposableRedis, LiveReader, MakeClient, eventually


async def test_requests_get_503_while_redis_is_away(make_client: MakeClient,
                                                    disposable_redis: DisposableRedis) -> None:
    client = await make_client(event_store=disposable_redis.url)

    async def healthy() -> bool:
        return (await client.get("/health")).status == 200

    health = await (await client.get("/health")).json()
    assert health["status"] == "ok" and health["event_store"] == "redis"

    disposable_redis.stop()
    response = await client.post("/api/mcp/v2/stream", json={"tool_name": "Echo", "arguments": {"text": "a"}})
    body = await response.json()
    assert response.status == 503 and body["code"] == "event_store_unavailable"
    assert f"127.0.0.1:{disposable_redis.port}" in body["error"]
    response = await client.get(f"/api/mcp/v2/runs/{'0' * 32}")
    assert response.status == 503
    response = await client.get("/health")
    health = await response.json()
    assert response.status == 503 and health["status"] == "degraded" and "redis" in health["problem"]
    # What does not need the store keeps working.
    assert (await client.get("/api/mcp/v2/stream/test?count=1&interval_ms=0")).status == 200

    disposable_redis.start()
    await eventually(healthy, what="health back once Redis is")
    response = await client.post("/api/mcp/v2/stream", json={"tool_name": "Echo", "arguments": {"text": "a"}})
    assert response.status == 200 and "event: complete" in await response.text()


async def test_after_redis_lost_everything_running_runs_are_put_back(disposable_redis: DisposableRedis) -> None:
    heard: list[str] = []
    store = RedisEventStore(disposable_redis.url, retention=60, max_events=100, lease=0.3)
    await store.start(on_cancel=heard.append)
    admin = redis.from_url(disposable_redis.url)
    try:
        for run_id in ("kept", "reaped"):
            await store.create(RunRecord(run_id, "Wait", RUNNING, time.time()))
        await admin.flushall()  # a restart without persistence: the lease and the records are gone
        await admin.hset("rhetor:v2:run:reaped", mapping={"tool_name": "Wait", "status": "error", "created": 0})

        async def reconciled() -> bool:
            return await store.get("kept") is not None and "reaped" in heard

        await eventually(reconciled, what="the lapsed lease was noticed and the runs reconciled")
        kept = await store.get("kept")
        assert kept is not None and kept.status == RUNNING and kept.tool_name == "Wait"
        assert heard == ["reaped"]  # ended elsewhere as lost: stopped here, not left paying for tokens

        store.end("kept", "complete")  # and its end writes a whole record again

        async def ended() -> bool:
            record = await store.get("kept")
            return record is not None and record.status == "complete"

        await eventually(ended, what="the run's end was written")
    finally:
        await admin.aclose()
        await store.close()


async def test_a_run_whose_events_outgrow_the_buffer_ends_with_event_store_unavailable(
        make_client: MakeClient, disposable_redis: DisposableRedis) -> None:
    client = await make_client(event_store=disposable_redis.url, event_store_buffer_bytes=20_000)
    text = " ".join(f"Sentence {n} is here." for n in range(1, 2001))
    body = {"tool_name": "StreamText", "arguments": {"text": text, "delay_ms": 1}}
    async with client.post("/api/mcp/v2/stream", json=body) as response:
        reader = LiveReader(response)
        await reader.until(3)
        await asyncio.to_thread(disposable_redis.stop)
        events = await asyncio.wait_for(reader.rest(), 30)  # it ends while Redis is still away
    assert reader.ids() == list(range(1, len(events) + 1))
    error, disconnect = events[-2:]
    assert error.event == "error" and error.json()["code"] == "event_store_unavailable"
    assert disconnect.event == "disconnect" and disconnect.json()["reason"] == "event_store_unavailable"
    run_id = events[0].json()["run_id"]

    await asyncio.to_thread(disposable_redis.start)  # empty: what the buffer still held is written again

    async def ended() -> bool:
        status = await client.get(f"/api/mcp/v2/runs/{run_id}")
        return status.status == 200 and (await status.json())["status"] == "error"

    await eventually(ended, timeout=30, what="the run's end was written once Redis was back")
    async with client.get(f"/api/mcp/v2/runs/{run_id}/events", headers={"Last-Event-ID": events[-3].id}) as r:
        assert [event.event for event in await LiveReader(r).rest()] == ["error", "disconnect"]
    async with client.get(f"/api/mcp/v2/runs/{run_id}/events") as r:  # its start did not fit: said so
        assert (await LiveReader(r).rest())[-2].json()["code"] == "events_expired"


UNKNOWN_RUN = "f" * 32  # the shape of a run id (anything else is a 404 before the store is asked)


async def test_an_unknown_run_asked_for_while_redis_is_away_ends_cleanly_once_it_is_back(
        make_client: MakeClient, disposable_redis: DisposableRedis) -> None:
    client = await make_client(event_store=disposable_redis.url, heartbeat=0.1)
    await asyncio.to_thread(disposable_redis.stop)
    async with client.get(f"/api/mcp/v2/runs/{UNKNOWN_RUN}/events") as response:
        assert response.status == 200  # an EventSource would never come back after a 503
        reader = LiveReader(response)
        rest = asyncio.create_task(reader.rest())
        await asyncio.sleep(0.5)
        await asyncio.to_thread(disposable_redis.start)
        assert await asyncio.wait_for(rest, 30) == []  # a clean end: the browser reconnects...
    assert reader.comments > 0
    response = await client.get(f"/api/mcp/v2/runs/{UNKNOWN_RUN}/events")
    assert response.status == 204  # ...and is told to stop
