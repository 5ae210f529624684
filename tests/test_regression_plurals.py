"""Regression: progress messages read "1 specialists, 1 rounds" and "Streaming 1 chunks"."""
from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.conftest import post_stream, read_events


async def test_one_of_each_is_singular(client: TestClient) -> None:
    events = await post_stream(client, "OrchestrateTeamChatStream",
                               {"topic": "Naming", "specialists": ["planner"], "rounds": 1})
    first = next(event.json() for event in events if event.event == "progress")
    assert first["message"].startswith("1 specialist, 1 round, ")


async def test_a_test_stream_of_one_chunk_is_singular(client: TestClient) -> None:
    async with client.get("/api/mcp/v2/stream/test?count=1&size=1&interval_ms=0") as response:
        events = await read_events(response)
    assert next(event.json() for event in events if event.event == "progress")["message"] == \
        "Streaming 1 chunk of 1 byte"
