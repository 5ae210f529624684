"""POST /api/mcp/v2/process (a tool call answered as one JSON document) and GET /api/mcp/v2/tools.

The streaming twin, POST /api/mcp/v2/stream, is a run: it lives with the other run routes in
`web/runs.py`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from aiohttp import web

from rhetor_stream.stream.channel import Item
from rhetor_stream.stream.run import ToolRun
from rhetor_stream.web.errors import json_response
from rhetor_stream.web.requests import read_tool_call
from rhetor_stream.web.state import STATE
from rhetor_stream.web.streams import RunCall


async def process_tool(request: web.Request) -> web.Response:
    """POST /api/mcp/v2/process: the same call, answered as one JSON document.

    A run like any other (`ToolRun` is the only caller of a tool and the only place that maps what it
    did), whose events go nowhere but its final frame: the answer is made of that `complete` or
    `error`. It is not logged in the event store (there is nothing to resume), and progress is not
    even produced (nobody would see it); a client that goes away cancels it.
    """
    state = request.app[STATE]
    settings = state.settings
    call = await read_tool_call(request, state.tools)
    outcome = FinalFrame()
    run = ToolRun(call.tool, call.arguments, sink=outcome, options=attrs.evolve(call.options, include_progress=False),
                  activity=state.activity, app=request.app, progress_interval=settings.progress_interval,
                  processing_tick=settings.processing_tick)
    session = RunCall(request, run)
    state.supervisor.watch(session)
    run.start()
    try:
        await run.wait_closed()
    finally:
        # Also reached when aiohttp cancels the handler: the run must not go on for nobody.
        run.cancel("client_disconnected")
        state.supervisor.forget(session)
    assert outcome.frame is not None, "a run always ends with complete or error"
    event, data = outcome.frame
    assert not isinstance(data, bytes)
    body: dict[str, Any] = {"success": event == "complete", "result": None, "error": None,
                            "execution_time": run.execution_time()}
    if event == "complete":
        body.update(result=data["result"], execution_time=data["execution_time"])
    else:
        body.update((key, value) for key, value in data.items() if key not in _STREAM_ONLY)
    return json_response(body)


# What an `error` frame says that a `/process` answer does not (the tool is the one asked for, the
# time is the answer's).
_STREAM_ONLY = frozenset({"tool_name", "timestamp"})


class FinalFrame:
    """The sink of a `/process` run: the events go nowhere, the final frame is kept."""

    __slots__ = ("frame",)

    def __init__(self) -> None:
        self.frame: Item | None = None

    async def send(self, event: str, data: Mapping[str, Any]) -> None:
        """Streaming tools still run; their events have nowhere to go."""

    def offer(self, event: str, data: Mapping[str, Any]) -> bool:
        return True

    def finish(self, *events: Item, reason: str = "complete") -> None:
        if self.frame is None and events:
            self.frame = events[0]  # `complete` or `error`; `disconnect` follows


async def list_tools(request: web.Request) -> web.Response:
    return json_response([tool.describe() for tool in request.app[STATE].tools])
