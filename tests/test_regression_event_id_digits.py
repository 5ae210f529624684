"""Regression: a Last-Event-ID whose number `int()` cannot read was a 500 (issue 9, item 6).

The number was checked with `str.isdigit()`, which also accepts digits such as '²', and then read
with `int()`, which refuses those and anything over 4,300 digits. Both are now a 400 naming the
problem, through the header and the query parameter alike; `rhetor_stream.check` read ids the same
way and no longer raises on them either.
"""
from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from rhetor_stream.check import problems
from rhetor_stream.client import StreamEvent
from tests.conftest import read_events


async def _finished_run(client: TestClient) -> str:
    async with client.post("/api/mcp/v2/stream", json={"tool_name": "Echo", "arguments": {"text": "a"}}) as response:
        events = await read_events(response)
    return str(events[0].json()["run_id"])


@pytest.mark.parametrize("number", ["²", "١٢", "1" * 4301, "1" * 21])
@pytest.mark.parametrize("where", ["header", "query"])
async def test_an_unreadable_number_is_a_400(client: TestClient, number: str, where: str) -> None:
    run_id = await _finished_run(client)
    last_event_id = f"{run_id[:8]}-{number}"
    if where == "header":
        response = await client.get(f"/api/mcp/v2/runs/{run_id}/events", headers={"Last-Event-ID": last_event_id})
    else:
        response = await client.get(f"/api/mcp/v2/runs/{run_id}/events", params={"last_event_id": last_event_id})
    body = await response.json()
    assert response.status == 400 and body["code"] == "invalid_event_id", body
    assert "number" in body["error"] and len(body["error"]) < 300


@pytest.mark.parametrize("number", ["²", "9" * 5000])
def test_the_checker_reads_such_ids_as_no_number(number: str) -> None:
    events = [StreamEvent("connected", f"ab-{number}", {}), StreamEvent("disconnect", "ab-2", {})]
    assert any("not strictly increasing" in problem for problem in problems(events))
    fine = [StreamEvent("connected", "ab-1", {}), StreamEvent("complete", "ab-2", {}),
            StreamEvent("disconnect", "ab-3", {})]
    assert not any("strictly increasing" in problem for problem in problems(fine))
