"""A fake upstream: a real local aiohttp server that replays a script of raw bytes, so every provider
is tested against its exact wire format, including what real networks do to it."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from rhetor_stream.providers import HTTPSettings


@attrs.define
class Upstream:
    """What the fake answers next, and what it saw."""

    status: int = 200
    error_headers: dict[str, str] = attrs.Factory(dict)  # sent with a non-200 status
    content_type: str = "text/event-stream"
    chunks: list[bytes] = attrs.Factory(list)
    delay: float = 0.0  # between chunks
    stall: bool = False  # send the headers, then nothing
    forever: bytes | None = None  # after the chunks, repeat this until the client goes away
    requests: list[dict[str, Any]] = attrs.Factory(list)
    headers: list[dict[str, str]] = attrs.Factory(list)
    closed_at: float | None = None
    server: TestServer | None = None

    async def was_closed(self) -> bool:
        return self.closed_at is not None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        self.headers.append(dict(request.headers))
        if self.status != 200:
            return web.Response(status=self.status, body=b"".join(self.chunks), content_type="application/json",
                                headers=self.error_headers)
        response = web.StreamResponse(headers={"Content-Type": self.content_type})
        await response.prepare(request)
        try:
            if self.stall:
                await asyncio.sleep(3600)
            for chunk in self.chunks:
                await response.write(chunk)
                await asyncio.sleep(self.delay)
            while self.forever is not None:
                await response.write(self.forever)
                await asyncio.sleep(0.01)
        except (ConnectionError, aiohttp.ClientConnectionResetError, asyncio.CancelledError):
            self.closed_at = asyncio.get_running_loop().time()
            raise
        return response


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    fake = Upstream()
    app = web.Application()
    app.router.add_post("/{path:.*}", fake.handle)
    fake.server = TestServer(app, handler_cancellation=True)
    await fake.server.start_server()
    yield fake
    await fake.server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


FAST_HTTP = HTTPSettings(connect_timeout=1.0, read_timeout=0.5, retries=2, backoff=0.01)
