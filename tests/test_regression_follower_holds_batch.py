"""Regression: a stream kept the last batch of events it wrote for as long as its run stayed quiet.

`RunManager.forward` read a batch, handed it to the client and went back to wait for the next one
with the written batch still in its frame: a list and a `StoredEvent` per event, alive for as long
as the run was quiet (an hour for `Wait(3600)`), in every open stream. Memory per open run stream is
a figure users are promised (`make bench`), and the log already holds every event it may resend.
"""
from __future__ import annotations

import asyncio
import gc

from aiohttp.test_utils import TestClient

from rhetor_stream.runs.store import StoredEvent
from tests.conftest import LiveReader


def stored_events_alive() -> int:
    gc.collect()
    return sum(1 for item in gc.get_objects() if type(item) is StoredEvent)


async def test_a_quiet_run_keeps_no_written_event_in_its_stream(client: TestClient) -> None:
    before = stored_events_alive()  # (none, unless an earlier test left some behind)
    async with client.post("/api/mcp/v2/stream", json={"tool_name": "Wait", "arguments": {"seconds": 30}}) as response:
        reader = LiveReader(response)
        events = await reader.until(2)
        assert [event.event for event in events] == ["connected", "progress"]
        await asyncio.sleep(0.05)  # the stream is back to waiting for the log
        assert stored_events_alive() == before
