"""What is not the API: GET /health for load balancers, the interactive page and its static files."""
from __future__ import annotations

import os
from typing import Any

from aiohttp import web

from rhetor_stream import __version__
from rhetor_stream.web.capacity import CAPACITY
from rhetor_stream.web.errors import json_response
from rhetor_stream.web.guard import authenticated
from rhetor_stream.web.state import STATE


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
