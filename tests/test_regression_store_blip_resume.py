"""Regression: resuming a run during or after a Redis outage failed.

During the outage the events URL answered 503, after which a browser's EventSource never tries
again; after it, the resume got `events_expired` (the events of the outage were lost). Now a resume
during the outage gets a 200 stream that waits for the store with heartbeats, keeps its place, and
goes on without a gap: served by the process that runs the run, or by another once Redis is back.
"""
from __future__ import annotations

import asyncio

import pytest

from tests.conftest import DisposableRedis, LiveReader, MakeClient

TEXT = " ".join(f"Sentence {n} is here." for n in range(1, 81))
BODY = {"tool_name": "StreamText", "arguments": {"text": TEXT, "delay_ms": 25},
        "stream_options": {"resume_grace_s": 10}}


@pytest.mark.parametrize("keep_data", [True, False], ids=["data-kept", "data-lost"])
@pytest.mark.parametrize("where", ["same-process", "other-process"])
async def test_resume_while_redis_is_away(make_client: MakeClient, disposable_redis: DisposableRedis,
                                          keep_data: bool, where: str) -> None:
    executing = await make_client(event_store=disposable_redis.url, heartbeat=0.2)
    resuming = executing if where == "same-process" else \
        await make_client(event_store=disposable_redis.url, heartbeat=0.2)
    async with executing.post("/api/mcp/v2/stream", json=BODY) as response:
        first = await LiveReader(response).until(3)  # then the connection drops
    await asyncio.to_thread(disposable_redis.stop, keep_data=keep_data)
    async with resuming.get(f"/api/mcp/v2/runs/{first[0].json()['run_id']}/events",
                            headers={"Last-Event-ID": first[-1].id}) as response:
        assert response.status == 200  # not a 503: an EventSource would give up for good
        reader = LiveReader(response)
        rest = asyncio.create_task(reader.rest())
        await asyncio.sleep(2.0)
        await asyncio.to_thread(disposable_redis.start)
        await asyncio.wait_for(rest, 30)
    events = first + reader.events
    assert [int(event.id.rsplit("-", 1)[1]) for event in events] == list(range(1, len(events) + 1))
    assert [event.event for event in events][-2:] == ["complete", "disconnect"]
    assert "".join(event.json()["content"]["content"] for event in events if event.event == "chunk") == TEXT
    if where == "other-process":
        assert reader.comments > 0  # heartbeats while it waited for the store
