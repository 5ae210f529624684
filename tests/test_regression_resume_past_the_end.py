"""Regression: resuming at or past the end of a finished run held the connection for the whole
retention (issue 9, item 6).

`GET /runs/{id}/events` with the run's own last id (or `<prefix>-1000`, or 2**64) answered 200 and
then sent nothing but heartbeats until the run expired (300 s by default). A browser whose
EventSource was not closed after `disconnect` reconnects into exactly this. Now such a request is a
204 at once (what tells an EventSource to stop), and an id past the end of a run still running is a
400. Both stores.
"""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import MakeClient, read_events


@pytest.fixture(params=["memory", "redis"])
async def run_client(request: pytest.FixtureRequest, make_client: MakeClient) -> TestClient:
    store = "memory" if request.param == "memory" else request.getfixturevalue("redis_url")
    return await make_client(event_store=store, heartbeat=0.05)


async def _events(client: TestClient, run_id: str, last_event_id: str) -> tuple[int, str]:
    """Status and body, or a failure when the server keeps the stream open."""
    async def get() -> tuple[int, str]:
        async with client.get(f"/api/mcp/v2/runs/{run_id}/events",
                              headers={"Last-Event-ID": last_event_id}) as response:
            return response.status, await response.text()
    try:
        return await asyncio.wait_for(get(), 3)
    except TimeoutError:
        pytest.fail(f"resuming after {last_event_id} kept the stream open")


async def test_at_or_past_the_end_of_a_finished_run_is_a_204(run_client: TestClient) -> None:
    async with run_client.post("/api/mcp/v2/stream",
                               json={"tool_name": "Echo", "arguments": {"text": "a"}}) as response:
        events = await read_events(response)
    run_id = events[0].json()["run_id"]
    prefix = run_id[:8]
    for last in (events[-1].id, f"{prefix}-1000", f"{prefix}-{2**64}"):
        assert await _events(run_client, run_id, last) == (204, ""), last
    status, body = await _events(run_client, run_id, events[-3].id)  # before the end: the rest
    assert status == 200 and "event: complete" in body and "event: disconnect" in body


async def test_past_the_end_of_a_running_run_is_a_400(run_client: TestClient) -> None:
    response = await run_client.post("/api/mcp/v2/runs", json={"tool_name": "Wait", "arguments": {"seconds": 30}})
    run_id = (await response.json())["run_id"]
    try:
        for last in (f"{run_id[:8]}-1000", f"{run_id[:8]}-{2**64}"):
            status, text = await _events(run_client, run_id, last)
            body = json.loads(text)
            assert status == 400 and body["code"] == "invalid_event_id", body
            assert "past the end" in body["error"]
    finally:
        await run_client.delete(f"/api/mcp/v2/runs/{run_id}")
