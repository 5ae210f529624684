"""Regression: connections that sent half their headers or half their body stayed open indefinitely.

aiohttp's default keep-alive timeout is 3,630 s and nothing bounded how long a body may take, so a
slow-loris client held a descriptor (and, with a body, a capacity slot) for an hour or more. Now
`--keepalive-timeout` also bounds the time to send a request's headers, and `--body-timeout` the
time to send its body (408 and the connection closed).
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from rhetor_stream.settings import Settings
from rhetor_stream.web.app import create_app, runner_options

TIMEOUT = 0.5
# Only a bound for a broken server, so the test ends: a fixed server closes after TIMEOUT.
GIVE_UP = 40 * TIMEOUT


@pytest.fixture
async def port() -> AsyncIterator[int]:
    settings = Settings(keepalive_timeout=TIMEOUT, body_timeout=TIMEOUT)
    runner = web.AppRunner(create_app(settings), **runner_options(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


async def read_until_closed(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    data = await asyncio.wait_for(reader.read(), GIVE_UP)
    return data, loop.time() - started


async def test_half_sent_headers_are_closed_after_the_timeout(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")  # never finished
    data, took = await read_until_closed(reader)
    writer.close()
    assert data == b""  # closed without an answer: there was no request to answer
    assert took >= TIMEOUT * 0.5


async def test_a_half_sent_body_gets_408_and_the_connection_closes(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"tool_name": "Echo", "arguments": {"text": "hi"}}).encode()
    writer.write(b"POST /api/mcp/v2/stream HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:10]))
    data, took = await read_until_closed(reader)
    writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), data
    assert b"Connection: close" in head
    assert json.loads(payload)["code"] == "body_timeout"
    assert took >= TIMEOUT * 0.5


async def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data, _ = await read_until_closed(reader)  # the answer, then the close once idle
    writer.close()
    assert data.startswith(b"HTTP/1.1 200")
