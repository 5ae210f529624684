"""The HTTP endpoints. Each handler checks its input completely before a stream starts."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs
from aiohttp import web

from rhetor_stream import __version__
from rhetor_stream.stream.channel import EventChannel, Item
from rhetor_stream.stream.options import StreamOptions
from rhetor_stream.stream.run import ToolRun
from rhetor_stream.tools.builtin import STREAM_TEST_TOOL
from rhetor_stream.web.capacity import CAPACITY
from rhetor_stream.web.errors import ApiError, json_response
from rhetor_stream.web.guard import authenticated
from rhetor_stream.web.requests import read_tool_call
from rhetor_stream.web.state import STATE
from rhetor_stream.web.streams import EventStreamResponse, RunCall, StreamSession, retry_hint

# Bounds of GET /api/mcp/v2/stream/test: (default, minimum, maximum). The defaults are a short
# human demo; the maxima allow the benchmark's 200,000-event run and hour-long idle streams, and keep
# what one unauthenticated request can ask for to 64 GB of traffic and 64 KiB a frame.
TEST_STREAM_PARAMS = {
    "count": (5, 0, 1_000_000),
    "size": (64, 1, 64 * 1024),
    "interval_ms": (500, 0, 3_600_000),
}


async def stream_test(request: web.Request) -> web.StreamResponse:
    """GET /api/mcp/v2/stream/test: a synthetic stream for `curl -N`, EventSource and the benchmark.

    A fixture for benchmarks and demos, not what users call: it is not a run (nothing is logged,
    nothing can be resumed), so its events go straight from the tool to the client's channel, the
    shortest path the stream machinery has. Its figures measure that machinery (framing, coalesced
    writes, backpressure, supervision); what a tool call costs is measured on `POST /stream`. The
    writer loop runs in this handler's own frame: every frame held by an open stream is memory.
    """
    arguments = {name: _query_int(request, name, *bounds) for name, bounds in TEST_STREAM_PARAMS.items()}
    state = request.app[STATE]
    settings = state.settings
    response = EventStreamResponse(request)
    channel = EventChannel(settings.queue_size, max_bytes=settings.queue_bytes, retry_ms=retry_hint(request))
    run = ToolRun(STREAM_TEST_TOOL, arguments, sink=channel, options=_TEST_OPTIONS, activity=state.activity,
                  app=request.app, progress_interval=settings.progress_interval,
                  processing_tick=settings.processing_tick)
    session = StreamSession(request, run, channel)
    async with response.serving(session):
        run.start()
        try:
            await response.prepare(request)
            await channel.pump(response)
        finally:
            await session.close()
    return response


_TEST_OPTIONS = StreamOptions(include_progress=True, chunk_size="none")


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


async def health(request: web.Request) -> web.Response:
    """503 while the event store is unreachable: every tool call needs it, so a load balancer
    should send requests elsewhere. Open to anyone (a load balancer sends no key); when the server
    needs a key, a caller without one is told the status only."""
    state = request.app[STATE]
    activity = state.activity
    problem = await state.runs.store.problem()
    body: dict[str, Any] = {
        "status": "ok" if problem is None else "degraded", "active_streams": activity.active_streams,
        "active_tools": activity.active_tools, "event_store": state.runs.store.kind,
        "version": __version__, "pid": os.getpid()}
    capacity = request.app[CAPACITY]
    body["capacity"] = {"in_use": capacity.in_use, "max_streams": capacity.max_streams,
                        "max_streams_per_client": capacity.per_client}
    if problem is not None:
        body["problem"] = problem
    if not authenticated(request):
        body = {"status": body["status"]}
    return json_response(body, status=200 if problem is None else 503)


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[STATE].static_dir / "streaming_client.html")


async def static_file(request: web.Request) -> web.FileResponse:
    """GET /static/{name}: a file of `static/`, found by name among the files there, so the path a
    client sends never reaches the file system (through aiohttp's static route, a 300-character
    name failed with ENAMETOOLONG: a 500)."""
    directory = request.app[STATE].static_dir
    name = request.match_info["name"]
    if name not in {entry.name for entry in directory.iterdir() if entry.is_file()}:
        raise web.HTTPNotFound()
    return web.FileResponse(directory / name)


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_query", f"query parameter '{name}' must be an integer, got {raw!r}",
                       argument=name) from None
    if not low <= value <= high:
        raise ApiError(400, "invalid_query", f"query parameter '{name}' must be between {low} and "
                       f"{high}, got {value}", argument=name)
    return value
