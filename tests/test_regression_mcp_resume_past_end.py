"""Regression: `GET /mcp` with the Last-Event-ID of a finished call's last message hung.

The client already had everything, yet the resume followed the call's log and sent nothing but
heartbeats until the retention ended (300 s), as `GET /runs/{id}/events` did before it learned to
answer 204. Both now ask the run manager where the client stands (`resume_point`): all of a finished
call is a 204 at once, an id the call never reached is a 400.
"""
from __future__ import annotations

import asyncio

from tests.conftest import Mcp


async def test_resuming_after_the_last_message_of_a_finished_call_ends_at_once(mcp: Mcp) -> None:
    events = await mcp.stream("Echo", {"text": "done"})
    response = await asyncio.wait_for(
        mcp.client.get("/mcp", headers=mcp.headers("text/event-stream", **{"Last-Event-ID": events[-1].id})), 10)
    assert response.status == 204


async def test_an_id_past_the_end_of_a_call_is_refused(mcp: Mcp) -> None:
    events = await mcp.stream("Wait", {"seconds": 30}, limit=1)
    beyond = events[0].id.rpartition("-")[0] + "-99"
    response = await asyncio.wait_for(
        mcp.client.get("/mcp", headers=mcp.headers("text/event-stream", **{"Last-Event-ID": beyond})), 10)
    assert response.status == 400
