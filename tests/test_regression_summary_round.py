"""Regression: the coordinator's summary of an N-round team chat was numbered round N+1 (the page
showed "round 3 - summary" for a 2-round chat). It now belongs to the last round, flagged summary."""
from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.conftest import post_stream


async def test_the_summary_is_numbered_with_the_last_round(client: TestClient) -> None:
    events = await post_stream(client, "OrchestrateTeamChatStream",
                               {"topic": "Naming", "specialists": ["planner"], "rounds": 2})
    messages = [event.json() for event in events if event.event == "message"]
    assert messages[-1]["summary"] is True and messages[-1]["round"] == 2
    assert max(message["round"] for message in messages) == 2
