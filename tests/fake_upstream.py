"""A fake upstream: a real local aiohttp server that replays a script of raw bytes, so every provider
is tested against its exact wire format, including what real networks do to it.

`tests/transcripts/*.http` hold whole responses in the shapes real servers were seen to send (issue
11: llama-cpp-python and LiteLLM proxy); `Upstream.replay(name)` answers with one of them."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from rhetor_stream.providers import HTTPSettings
from rhetor_stream.providers.base import ChatRequest, Provider, UpstreamError

TRANSCRIPTS = Path(__file__).parent / "transcripts"


@attrs.define
class Upstream:
    """What the fake answers next, and what it saw."""

    status: int = 200
    error_headers: dict[str, str] = attrs.Factory(dict)  # sent with a non-200 status
    error_content_type: str = "application/json"
    content_type: str = "text/event-stream"
    chunks: list[bytes] = attrs.Factory(list)
    delay: float = 0.0  # between chunks
    header_delay: float = 0.0  # before the response headers: a slow model
    respond: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None  # instead of the script
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

    def replay(self, name: str) -> None:
        """Answer with the transcript `tests/transcripts/<name>.http`: a status line, headers, a blank
        line and the body, one network chunk per SSE frame or NDJSON line."""
        head, _, body = (TRANSCRIPTS / f"{name}.http").read_bytes().partition(b"\n\n")
        status_line, *header_lines = head.decode().splitlines()
        headers = dict(line.split(": ", 1) for line in header_lines)
        self.status = int(status_line.split()[1])
        content_type = headers.pop("Content-Type")
        if self.status == 200:
            self.content_type = content_type
            separator = b"\n\n" if content_type == "text/event-stream" else b"\n"
            self.chunks = [frame + separator for frame in body.split(separator) if frame]
        else:
            self.error_content_type = content_type
            self.error_headers = headers
            self.chunks = [body]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        self.headers.append(dict(request.headers))
        if self.respond is not None:
            return await self.respond(request)
        await asyncio.sleep(self.header_delay)
        if self.status != 200:
            return web.Response(status=self.status, body=b"".join(self.chunks), content_type=self.error_content_type,
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


async def upstream_error(provider: Provider, request: ChatRequest) -> UpstreamError:
    """The error `provider` raises while streaming `request` (the test fails if it raises none)."""
    with pytest.raises(UpstreamError) as caught:
        async for _ in provider.stream(request):
            pass
    return caught.value
