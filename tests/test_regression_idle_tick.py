"""Regression: an idle run nobody followed still stored a `processing` event every second.

5,000 open `Wait` runs kept a core busy storing heartbeats nobody read (and an hour-long Wait filled
its log with 3,600 of them). Now the automatic tick is stored only while somebody follows the run;
the CPU figures are in bench/README.md (`python -m bench.idle_runs`).
"""
from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient

from rhetor_stream.web.state import STATE
from tests.conftest import MakeClient

TICK = 0.05
WATCH = 1.0  # twenty ticks


async def processing_events(client: TestClient, run_id: str) -> int:
    store = client.app[STATE].runs.store  # type: ignore[union-attr]
    events = await store.read(run_id, 0, wait=0)
    return sum(event.event == "progress" and b'"processing"' in event.data for event in events)


async def test_an_idle_run_stores_ticks_only_while_followed(make_client: MakeClient) -> None:
    client = await make_client(processing_tick=TICK, progress_interval=0)
    async with client.post("/api/mcp/v2/runs", json={"tool_name": "Wait", "arguments": {"seconds": 60}}) as r:
        run_id = (await r.json())["run_id"]
    await asyncio.sleep(WATCH)
    unfollowed = await processing_events(client, run_id)

    async with client.get(f"/api/mcp/v2/runs/{run_id}/events") as response:
        assert response.status == 200
        await asyncio.sleep(WATCH)
        followed = await processing_events(client, run_id) - unfollowed
    await client.delete(f"/api/mcp/v2/runs/{run_id}")

    assert followed >= 3, "a followed run still gets its processing ticks"
    assert unfollowed == 0, f"{unfollowed} ticks stored for nobody in {WATCH}s"
