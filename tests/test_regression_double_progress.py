"""Regression: a tool that reported its own progress every second got a second progress event a second.

The automatic "still running" tick of a plain tool fired whatever the tool said: a followed `Wait`
sent its own report and, a moment before or after it, "Wait is running", two progress events a
second in the log and on the wire. Now a tick is skipped when the tool reported since the last one;
a tool that says nothing still gets one every tick.
"""
from __future__ import annotations

import asyncio
from typing import Any

from rhetor_stream.settings import Settings
from rhetor_stream.tools import ToolContext, ToolRegistry, mcp_tool
from rhetor_stream.web.app import create_app
from tests.conftest import FAST, post_stream

TICK = 0.1
REPORTS = 10


@mcp_tool(name="Reporter")
async def reporter(*, _context: ToolContext) -> dict[str, Any]:
    for step in range(1, REPORTS + 1):
        await asyncio.sleep(TICK)  # the tool's own cadence is the tick's, as Wait's is
        await _context.report_progress(100 * step / (REPORTS + 1), f"step {step}")
    return {"steps": REPORTS}


@mcp_tool(name="Silent")
async def silent() -> dict[str, Any]:
    await asyncio.sleep(REPORTS * TICK)
    return {}


tools = ToolRegistry()
tools.add(reporter, silent)


def _ticks(events: list[Any]) -> int:
    return sum(event.event == "progress" and event.json()["message"].endswith(" is running") for event in events)


async def test_a_tool_that_reports_gets_no_ticks_beside_its_reports(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(Settings(**{**FAST, "processing_tick": TICK, "progress_interval": 0}),
                                             tools=tools))
    events = await post_stream(client, "Reporter")
    own = [event.json()["message"] for event in events if event.event == "progress"
           and event.json()["message"].startswith("step ")]
    assert own == [f"step {step}" for step in range(1, REPORTS + 1)]
    assert _ticks(events) <= 3, f"{_ticks(events)} ticks beside {REPORTS} reports of the tool's own"

    quiet = await post_stream(client, "Silent")
    assert _ticks(quiet) >= REPORTS // 2, "a tool that says nothing still gets its ticks"
