"""Regression: events a run produced while Redis was away were dropped ("they are lost").

The batch that failed to go out was thrown away, so the run's log had a gap (or, after a restart
without persistence, lost its beginning as well). Now the events are held and written when Redis is
back: the whole log, in order, no gap, no duplicate, whether Redis kept its data or not.
"""
from __future__ import annotations

import asyncio

import pytest

from tests.conftest import DisposableRedis, LiveReader, MakeClient, eventually, redis_outage

TEXT = " ".join(f"Sentence {n} is here." for n in range(1, 81))


@pytest.mark.parametrize("keep_data", [True, False], ids=["data-kept", "data-lost"])
async def test_events_produced_while_redis_is_away_are_written_later(
        make_client: MakeClient, keep_data: bool, disposable_redis: DisposableRedis) -> None:
    client = await make_client(event_store=disposable_redis.url)
    body = {"tool_name": "StreamText", "arguments": {"text": TEXT, "delay_ms": 25}}
    response = await client.post("/api/mcp/v2/runs", json=body)  # detached: nobody follows it
    run_id = (await response.json())["run_id"]
    await asyncio.sleep(0.3)
    await redis_outage(disposable_redis, 2.0, keep_data=keep_data)

    async def finished() -> bool:
        status = await client.get(f"/api/mcp/v2/runs/{run_id}")
        return status.status == 200 and (await status.json())["status"] != "running"

    await eventually(finished, timeout=30, what="the run ended and its status was written")
    async with client.get(f"/api/mcp/v2/runs/{run_id}/events") as response:
        reader = LiveReader(response)
        events = await reader.rest()
    assert reader.ids() == list(range(1, len(events) + 1))
    assert [event.event for event in events][-2:] == ["complete", "disconnect"]
    assert "".join(event.json()["content"]["content"] for event in events if event.event == "chunk") == TEXT
