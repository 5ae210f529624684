"""Regression: a HEAD request to an event stream got the stream's events as a body.

aiohttp answers HEAD on every GET route by calling its handler, and sends whatever a streaming
handler writes: the test stream ran its tool and wrote its events after the headers of a HEAD
answer. A client reads those bytes as the start of its next response on the connection ("Bad
status line"; found by tests/test_fuzz_routes.py). An event stream has no HEAD: 405, naming GET.
"""
from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient

from tests.conftest import Mcp


async def raw_head(client: TestClient, path: str) -> bytes:
    """The whole answer to a HEAD request, as bytes off the socket (nothing may follow its headers)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"HEAD {path} HTTP/1.1\r\nHost: {client.host}:{client.port}\r\n"
                 "Connection: close\r\n\r\n".encode())
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_head_on_the_test_stream_is_refused_without_a_body(client: TestClient) -> None:
    answer = await raw_head(client, "/api/mcp/v2/stream/test?count=3")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405") and b"Allow: GET" in head, head
    assert b"event:" not in body


async def test_head_on_a_runs_events_is_refused_without_a_body(client: TestClient) -> None:
    async with client.post("/api/mcp/v2/runs", json={"tool_name": "Echo", "arguments": {"text": "hi"}}) as response:
        events_url = (await response.json())["events_url"]
    head, _, body = (await raw_head(client, events_url)).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405") and b"Allow: GET" in head, head
    assert b"event:" not in body


async def test_head_on_mcp_is_refused_without_a_body(mcp: Mcp) -> None:
    head, _, body = (await raw_head(mcp.client, "/mcp")).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405"), head
    assert b"event:" not in body and b"jsonrpc" not in body


async def test_head_on_a_json_route_still_answers(client: TestClient) -> None:
    head, _, body = (await raw_head(client, "/health")).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == b""
