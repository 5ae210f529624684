"""Redis going away: clear 503s that name the problem, and health that says so, never a 500."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

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
    response = await client.get("/api/mcp/v2/runs/some-run")
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
