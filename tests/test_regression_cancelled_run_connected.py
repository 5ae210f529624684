"""Regression: a run cancelled before its task's first step logged no `connected` event.

The event order is a contract: `connected` first, then exactly one `complete` or `error`, then
`disconnect`. `connected` was sent by the task itself, so a run stopped before the task ran (the MCP
transport and RunManager.create start runs that are cancelled at once when their client has already
gone) logged only `error` and `disconnect`. Now `connected` is logged when the run starts.
"""
from __future__ import annotations

import asyncio

from rhetor_stream.runs import RunManager
from rhetor_stream.runs.memory import MemoryEventStore
from rhetor_stream.stream.activity import Activity
from rhetor_stream.stream.options import StreamOptions
from rhetor_stream.tools import builtin
from rhetor_stream.tools.registry import ToolRegistry


async def test_a_run_cancelled_before_its_first_step_begins_with_connected() -> None:
    tools = ToolRegistry()
    tools.add_module(builtin)
    wait = tools.get("Wait")
    assert wait is not None
    manager = RunManager(MemoryEventStore(retention=300, max_events=1000, max_bytes=1 << 20),
                         activity=Activity(), app=None, queue_size=16, progress_interval=0.1,
                         processing_tick=1.0)
    await manager.start()
    run = await manager.create(wait, {"seconds": 60}, StreamOptions(), grace=None)
    run.tool_run.cancel("client_disconnected")  # before the task's first step
    await run.tool_run.wait_closed()
    events = await manager.store.read(run.run_id, 0, wait=0)
    assert [event.event for event in events] == ["connected", "error", "disconnect"]
    await asyncio.sleep(0)
