"""The application factory: `create_app(settings)` wires handlers, the supervisor and CORS."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp_cors
from aiohttp import web
from aiohttp.log import server_logger

from rhetor_stream import specialists
from rhetor_stream.api import API
from rhetor_stream.mcp import http as mcp_http
from rhetor_stream.runs import RunManager, open_store
from rhetor_stream.settings import Settings
from rhetor_stream.specialists import tools as specialist_tools
from rhetor_stream.stream.activity import Activity
from rhetor_stream.stream.supervisor import StreamSupervisor
from rhetor_stream.tools import builtin
from rhetor_stream.tools.loading import load_tools
from rhetor_stream.tools.registry import ToolRegistry
from rhetor_stream.web import guard, runs, site, test_stream, tool_calls
from rhetor_stream.web.capacity import CAPACITY, Capacity
from rhetor_stream.web.errors import ServerLog
from rhetor_stream.web.front_door import FrontDoor
from rhetor_stream.web.state import STATE, AppState

# How --shutdown-timeout is spent: open streams get half of it to end with their final frames, then
# stuck connections are aborted; aiohttp's runner waits up to RUNNER_SHARE twice per connection.
STREAMS_SHARE = 0.5
RUNNER_SHARE = 0.1
# What takes one of the --max-streams slots: every stream, and every call that runs a tool.
LIMITED = (runs.stream_as_run, runs.start_run, runs.run_events, test_stream.stream_test, tool_calls.process_tool,
           mcp_http.post, mcp_http.get)
# Of those, the ones that may keep their place after their answer: it goes with the run they start.
DETACHING = (runs.start_run,)


def static_dir() -> Path:
    """`static/` inside the installed package (wheel), else beside the package (source checkout)."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "static"
    return installed if installed.is_dir() else package.parent / "static"


def served_tools(sources: Sequence[str] = ()) -> ToolRegistry:
    """A fresh registry of the tools an app serves: the built-ins (Echo, Wait, StreamText), the
    specialists' tools, then those of the `sources` modules (`--tools`) and of the entry-point group.
    A module that cannot be served raises ToolLoadError naming it and the problem."""
    tools = ToolRegistry()
    tools.add_module(builtin)
    tools.add_module(specialist_tools)
    load_tools(sources, tools)
    return tools


def create_app(settings: Settings | None = None, *, tools: ToolRegistry | None = None) -> web.Application:
    """The server for `settings`. It serves `tools` if given (tests serve their own, and only those),
    else `served_tools(settings.tools)`: a registry of its own, so apps in one process never share one."""
    settings = settings or Settings()
    if tools is None:
        tools = served_tools(settings.tools)  # a module that cannot be served stops start-up
    app = web.Application(client_max_size=settings.max_body_bytes, handler_args={"logger": ServerLog(server_logger)})
    app[CAPACITY] = Capacity.from_settings(settings)
    supervisor = StreamSupervisor(poll=settings.disconnect_poll, send_timeout=settings.send_timeout,
                                  heartbeat=settings.heartbeat)
    activity = Activity()
    manager = RunManager(open_store(settings), activity=activity, app=app, queue_size=settings.queue_size,
                         progress_interval=settings.progress_interval,
                         processing_tick=settings.processing_tick)
    app[STATE] = AppState(settings=settings, tools=tools, supervisor=supervisor,
                          static_dir=static_dir(), runs=manager, activity=activity)
    specialists.setup(app, settings)
    app.cleanup_ctx.append(_supervise)
    guard.setup(app, settings)  # after _supervise: the run-token secret may come from the store
    app.on_shutdown.append(_end_streams)

    # Every route passes the front door: the security checks first (a request they refuse takes no
    # place under --max-streams), then the place, and any error becomes its JSON answer.
    door = FrontDoor(app, limited=LIMITED, detaching=DETACHING)
    api_routes = [
        door.post(f"{API}/stream", runs.stream_as_run),
        door.post(f"{API}/runs", runs.start_run),
        door.get(f"{API}/runs/{{run_id}}", runs.run_status),
        door.delete(f"{API}/runs/{{run_id}}", runs.cancel_run),
        door.get(f"{API}/runs/{{run_id}}/events", runs.run_events, head=False),
        door.post(f"{API}/process", tool_calls.process_tool),
        door.get(f"{API}/stream/test", test_stream.stream_test, head=False),
        door.get(f"{API}/tools", tool_calls.list_tools),
        door.get("/health", site.health),
        *mcp_http.setup(app, door),
    ]
    door.get("/", site.page)
    door.get("/static/{name}", site.static_file)
    if settings.cors_origin:
        _allow_origins(app, settings.cors_origin, api_routes)
    door.unmatched()  # last: it takes whatever no route above took
    return app


async def _supervise(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    await state.runs.start()
    state.supervisor.start()
    yield
    await state.supervisor.stop()
    await state.runs.close()


async def _end_streams(app: web.Application) -> None:
    """Shutdown: cancel this process's runs (their logs end with server_shutdown), end every stream."""
    state = app[STATE]
    timeout = state.settings.shutdown_timeout
    await asyncio.gather(state.runs.shutdown(timeout * STREAMS_SHARE),
                         state.supervisor.shutdown(timeout * STREAMS_SHARE, grace=timeout * RUNNER_SHARE))


def runner_options(settings: Settings) -> dict[str, Any]:
    """How `web.AppRunner` treats connections: slow or idle clients do not hold them for long."""
    return {
        "shutdown_timeout": settings.shutdown_timeout * RUNNER_SHARE,
        "handler_cancellation": True,
        # In aiohttp 3.14 this timer also runs from the connection's start until a request's headers
        # are complete, so it is the header read timeout as well.
        "keepalive_timeout": settings.keepalive_timeout,
        # After an early answer (413, 408) aiohttp reads and drops the rest of the body, so that the
        # client sees the answer instead of a reset; no longer than a body may take in the first place.
        "lingering_time": min(10.0, settings.body_timeout),
    }


def _allow_origins(app: web.Application, origins: tuple[str, ...], routes: list[web.AbstractRoute]) -> None:
    # A wildcard origin cannot be combined with credentials; explicit origins may send cookies.
    cors = aiohttp_cors.setup(app, defaults={
        origin: aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]  # aiohttp_cors has no type hints
            allow_credentials=origin != "*", expose_headers="*", allow_headers="*",
            allow_methods=["GET", "POST", "DELETE"])
        for origin in origins
    })
    for route in routes:
        cors.add(route)
