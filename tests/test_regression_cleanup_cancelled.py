"""Regression: a client leaving a run's stream did not always cancel the run (CI, test_runs[redis]).

The handler's cleanup first waited for the run's follower to stop, then unsubscribed. A Redis read
takes a moment to abort, and when aiohttp cancelled the handler during that wait, the rest of the
cleanup was skipped: the run went on for a client that was gone and the stream stayed counted.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from rhetor_stream.runs.manager import RunManager
from rhetor_stream.sse.parser import SSEParser
from rhetor_stream.web import runs as runs_web
from tests.conftest import MakeClient, eventually


async def _stop_slowly(seconds: float) -> None:
    """What a Redis read does when cancelled: finish its own clean-up first, whatever comes."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(left)


async def test_a_cancelled_cleanup_still_cancels_the_run(make_client: MakeClient,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    handlers: list[asyncio.Task[Any]] = []
    follow, forward = runs_web.follow, RunManager.forward

    async def capturing_follow(*args: Any, **kwargs: Any) -> Any:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        return await follow(*args, **kwargs)

    async def slow_to_stop(self: RunManager, *args: Any, **kwargs: Any) -> None:
        try:
            await forward(self, *args, **kwargs)
        except asyncio.CancelledError:
            await _stop_slowly(0.5)
            raise

    monkeypatch.setattr(runs_web, "follow", capturing_follow)
    monkeypatch.setattr(RunManager, "forward", slow_to_stop)
    client = await make_client()
    response = await client.post("/api/mcp/v2/stream", json={"tool_name": "Wait", "arguments": {"seconds": 30}})
    parser = SSEParser()
    connected = None
    async for data in response.content.iter_any():
        if events := parser.feed(data):
            connected = events[0]
            break
    assert connected is not None and connected.event == "connected"
    run_id = connected.json()["run_id"]

    handlers[0].cancel()  # aiohttp stops the handler: its cleanup starts waiting for the follower
    await asyncio.sleep(0.05)
    handlers[0].cancel()  # and a second cancellation lands in that wait

    async def all_stopped() -> bool:
        health = await (await client.get("/health")).json()
        return bool(health["active_streams"] == 0 and health["active_tools"] == 0)

    await eventually(all_stopped, what="the stream and its run stopped")
    status = await (await client.get(f"/api/mcp/v2/runs/{run_id}")).json()
    assert status["status"] == "cancelled"
    response.close()
