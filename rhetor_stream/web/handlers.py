"""The HTTP endpoints. Each handler checks its input completely before a stream starts."""
from __future__ import annotations

import asyncio
import logging
import os
import random
from contextlib import suppress
from typing import Any

from aiohttp import ClientConnectionResetError, web

from rhetor_stream import __version__
from rhetor_stream.stream.channel import EventChannel
from rhetor_stream.stream.run import StreamOptions, ToolRun, new_run_id
from rhetor_stream.stream.session import CallSession, StreamSession
from rhetor_stream.tools.builtin import STREAM_TEST_TOOL
from rhetor_stream.tools.registry import ToolContext, ToolError
from rhetor_stream.web.capacity import CAPACITY
from rhetor_stream.web.errors import ApiError, json_response
from rhetor_stream.web.guard import authenticated
from rhetor_stream.web.requests import read_tool_call
from rhetor_stream.web.sse import SSE_HEADERS
from rhetor_stream.web.state import STATE

log = logging.getLogger("rhetor_stream.web")

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

    It is not a run (nothing to resume), so its events go straight from the tool to the client. The
    writer loop runs in this handler's own frame: every frame held by an open stream is memory.
    """
    arguments = {name: _query_int(request, name, *bounds) for name, bounds in TEST_STREAM_PARAMS.items()}
    state = request.app[STATE]
    settings = state.settings
    # Jitter spreads the reconnects of many clients cut at the same moment (a deploy, a proxy).
    retry_ms = round(settings.retry_ms * random.uniform(1.0, 1.25))
    channel = EventChannel(settings.queue_size, max_bytes=settings.queue_bytes, retry_ms=retry_ms)
    run = ToolRun(STREAM_TEST_TOOL, arguments, sink=channel, options=_TEST_OPTIONS, activity=state.activity,
                  app=request.app, progress_interval=settings.progress_interval,
                  processing_tick=settings.processing_tick)
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    session = StreamSession(request, run, channel)
    state.supervisor.watch(session)
    state.activity.active_streams += 1
    run.start()
    try:
        await channel.pump(response)
    except (ConnectionError, ClientConnectionResetError):
        pass
    finally:
        # Also reached when aiohttp cancels the handler (handler_cancellation=True), and that
        # cancellation may interrupt the wait: the bookkeeping must not depend on it.
        try:
            await session.close()
        finally:
            state.supervisor.forget(session)
            state.activity.active_streams -= 1
    with suppress(ConnectionError, ClientConnectionResetError):
        await response.write_eof()
    return response


_TEST_OPTIONS = StreamOptions(include_progress=True, chunk_size="none")


async def process_tool(request: web.Request) -> web.Response:
    """POST /api/mcp/v2/process: the same call, answered as one JSON document."""
    state = request.app[STATE]
    call = await read_tool_call(request, state.tools)
    loop = asyncio.get_running_loop()
    started = loop.time()
    context = ToolContext(run_id=new_run_id(), tool_name=call.tool.name, chunk_size=call.options.chunk_size,
                          app=request.app)
    task = asyncio.ensure_future(call.tool.invoke(call.arguments, context=context,
                                                  stream_callback=_discard))
    session = CallSession(request, task)
    state.supervisor.watch(session)
    state.activity.active_tools += 1
    try:
        await asyncio.wait({task})
    finally:
        state.supervisor.forget(session)
        state.activity.active_tools -= 1
    body: dict[str, Any] = {"success": False, "result": None, "error": None,
                            "execution_time": round(loop.time() - started, 4)}
    if task.cancelled():
        body.update(error=f"{call.tool.name} was stopped: {(session.reason or 'cancelled').replace('_', ' ')}",
                    code=session.reason or "cancelled")
    elif isinstance(task.exception(), ToolError):
        error = task.exception()
        assert isinstance(error, ToolError)
        body.update(error=error.message, code=error.code, **error.details)
    elif task.exception() is not None:
        error = task.exception()
        log.error("tool %s raised", call.tool.name, exc_info=error)
        body.update(error=f"{call.tool.name} failed: {type(error).__name__}: {error}", code="tool_error")
    else:
        body.update(success=True, result=task.result())
    return json_response(body)


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


async def _discard(event_type: str, data: object) -> None:
    """`/process` has no stream: streaming tools still run, their events have nowhere to go."""


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
