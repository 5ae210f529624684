"""Regression: a team chat's first progress message read "1 specialists, 1 rounds"."""
from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.conftest import post_stream


async def test_one_of_each_is_singular(client: TestClient) -> None:
    events = await post_stream(client, "OrchestrateTeamChatStream",
                               {"topic": "Naming", "specialists": ["planner"], "rounds": 1})
    first = next(event.json() for event in events if event.event == "progress")
    assert first["message"].startswith("1 specialist, 1 round, ")
