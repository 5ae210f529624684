"""The application factory: `create_app(settings)` wires handlers, the supervisor and CORS."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_cors
from aiohttp import web

import rhetor_stream.tools.builtin  # noqa: F401  (registers Echo, Wait, StreamText)
from rhetor_stream.settings import Settings
from rhetor_stream.stream.supervisor import StreamSupervisor
from rhetor_stream.tools.registry import ToolRegistry, registry
from rhetor_stream.web import handlers
from rhetor_stream.web.errors import error_middleware
from rhetor_stream.web.state import STATE, AppState

API = "/api/mcp/v2"


def static_dir() -> Path:
    """`static/` inside the installed package (wheel), else beside the package (source checkout)."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "static"
    return installed if installed.is_dir() else package.parent / "static"


def create_app(settings: Settings | None = None, *, tools: ToolRegistry | None = None) -> web.Application:
    settings = settings or Settings()
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    supervisor = StreamSupervisor(poll=settings.disconnect_poll, send_timeout=settings.send_timeout,
                                  heartbeat=settings.heartbeat)
    app[STATE] = AppState(settings=settings, tools=tools or registry, supervisor=supervisor,
                          static_dir=static_dir())
    app.cleanup_ctx.append(_supervise)
    app.on_shutdown.append(_end_streams)

    api_routes = [
        app.router.add_post(f"{API}/stream", handlers.stream_tool),
        app.router.add_post(f"{API}/process", handlers.process_tool),
        app.router.add_get(f"{API}/stream/test", handlers.stream_test),
        app.router.add_get(f"{API}/tools", handlers.list_tools),
        app.router.add_get("/health", handlers.health),
    ]
    app.router.add_get("/", handlers.page)
    app.router.add_static("/static", app[STATE].static_dir)
    if settings.cors_origin:
        _allow_origins(app, settings.cors_origin, api_routes)
    return app


async def _supervise(app: web.Application) -> AsyncIterator[None]:
    supervisor = app[STATE].supervisor
    supervisor.start()
    yield
    await supervisor.stop()


async def _end_streams(app: web.Application) -> None:
    state = app[STATE]
    await state.supervisor.shutdown(state.settings.shutdown_timeout)


def _allow_origins(app: web.Application, origins: tuple[str, ...], routes: list[web.AbstractRoute]) -> None:
    # A wildcard origin cannot be combined with credentials; explicit origins may send cookies.
    cors = aiohttp_cors.setup(app, defaults={
        origin: aiohttp_cors.ResourceOptions(allow_credentials=origin != "*", expose_headers="*",
                                             allow_headers="*", allow_methods=["GET", "POST"])
        for origin in origins
    })
    for route in routes:
        cors.add(route)
