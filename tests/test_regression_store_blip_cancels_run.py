"""Regression: Redis away for a few seconds cancelled every `POST /stream` run as if its client left.

The subscriber's read failed, its stream ended, and ending the last subscriber cancelled the run
(`client_disconnected`), though the client was still there. Now the subscriber waits for the store
and the run finishes: its client gets `complete`, and its status says so.
"""
from __future__ import annotations

import pytest

from tests.conftest import DisposableRedis, LiveReader, MakeClient, redis_outage


@pytest.mark.parametrize("keep_data", [True, False], ids=["data-kept", "data-lost"])
async def test_a_redis_restart_does_not_cancel_the_run(make_client: MakeClient, keep_data: bool,
                                                       disposable_redis: DisposableRedis) -> None:
    client = await make_client(event_store=disposable_redis.url)
    body = {"tool_name": "Wait", "arguments": {"seconds": 3}}
    async with client.post("/api/mcp/v2/stream", json=body) as response:
        reader = LiveReader(response)
        connected = (await reader.until(1))[0]
        await redis_outage(disposable_redis, 2.0, keep_data=keep_data)
        events = await reader.rest()
    assert [event.event for event in events][-2:] == ["complete", "disconnect"]
    assert events[-1].json()["reason"] == "complete"
    status = await client.get(f"/api/mcp/v2/runs/{connected.json()['run_id']}")
    assert (await status.json())["status"] == "complete"
