"""Redis going away or losing its data: clear 503s that name the problem, health that says so, never
a 500, and running runs that find their footing again."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
import redis.asyncio as redis

from rhetor_stream.runs.redis_store import RedisEventStore
from rhetor_stream.runs.store import RUNNING, RunRecord

from tests.conftest import MakeClient, eventually, free_port, start_redis


class DisposableRedis:
    """A redis-server of this test's own, to stop and start again under a running server."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_redis(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def disposable_redis() -> Iterator[DisposableRedis]:
    server = DisposableRedis()
    server.start()
    yield server
    server.stop()


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
        await admin.hset("rhetor:run:reaped", mapping={"tool_name": "Wait", "status": "error", "created": 0})

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
