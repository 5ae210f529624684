"""Regression: Redis away for a few seconds ended every live stream with a bare chunked terminator.

The subscriber's read failed, the forwarder ended and the channel was finished without a frame: no
`error`, no `disconnect`, and no reason to reconnect. Now the subscriber waits for the store and the
stream goes on; every event arrives once, in order, whether Redis kept its data, came back empty or
was only frozen for a while (SIGSTOP: connections open, nothing answered). A subscriber that fails
for another reason ends its stream with an `error` and a `disconnect`, not with a bare end either.
"""
from __future__ import annotations

from typing import Any

import pytest

from rhetor_stream.runs.store import StoredEvent
from rhetor_stream.web.state import STATE
from tests.conftest import DisposableRedis, LiveReader, MakeClient, redis_outage

TEXT = " ".join(f"Sentence {n} is here." for n in range(1, 121))


@pytest.mark.parametrize("keep_data", [True, False, None], ids=["data-kept", "data-lost", "frozen"])
async def test_a_live_stream_goes_on_through_a_redis_restart(make_client: MakeClient, keep_data: bool | None,
                                                             disposable_redis: DisposableRedis) -> None:
    client = await make_client(event_store=disposable_redis.url, heartbeat=0.2)
    body = {"tool_name": "StreamText", "arguments": {"text": TEXT, "delay_ms": 25}}
    async with client.post("/api/mcp/v2/stream", json=body) as response:
        assert response.status == 200
        reader = LiveReader(response)
        await reader.until(5)
        await redis_outage(disposable_redis, 2.0, keep_data=keep_data)
        events = await reader.rest()
    assert reader.ids() == list(range(1, len(events) + 1))
    assert [event.event for event in events][-2:] == ["complete", "disconnect"]
    assert "".join(event.json()["content"]["content"] for event in events if event.event == "chunk") == TEXT


async def test_a_subscriber_that_fails_otherwise_ends_with_an_error_frame(make_client: MakeClient) -> None:
    client = await make_client()
    store = client.app[STATE].runs.store

    async def broken(run_id: str, after: int, *, wait: float) -> list[StoredEvent]:
        raise RuntimeError("a bug")

    store.read = broken  # type: ignore[method-assign]
    body: dict[str, Any] = {"tool_name": "Echo", "arguments": {"text": "a"}}
    async with client.post("/api/mcp/v2/stream", json=body) as response:
        events = await LiveReader(response).rest()
    assert [event.event for event in events] == ["error", "disconnect"]
    assert events[0].json()["code"] == "internal_error"
