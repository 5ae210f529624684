"""Regression: the server took streams until it ran out of file descriptors.

At a 1,024-fd limit, clients past ~1,017 got no answer, /health hung and asyncio logged hundreds of
thousands of accept() tracebacks. Now `--max-streams` (derived from the open-file limit by default)
and `--max-streams-per-client` bound what is served; past them a request gets 503 with Retry-After
and a JSON body before any run starts, and /health keeps answering.
"""
from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from rhetor_stream.web.capacity import FD_RESERVE
from rhetor_stream.web.state import STATE
from tests.conftest import ROOT, MakeClient, eventually

WAIT = {"tool_name": "Wait", "arguments": {"seconds": 60}}


@contextlib.asynccontextmanager
async def open_stream(client: TestClient, **kwargs: Any) -> AsyncIterator[aiohttp.ClientResponse]:
    """A POST /stream that is open and running (its `connected` event has arrived)."""
    async with client.post("/api/mcp/v2/stream", json=WAIT, **kwargs) as response:
        assert response.status == 200, await response.text()
        while b"connected" not in await response.content.readline():
            pass
        yield response


async def assert_refused(response: aiohttp.ClientResponse, code: str) -> None:
    assert response.status == 503, await response.text()
    assert response.headers["Retry-After"] == "3"
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["code"] == code and body["retry_after"] == 3 and body["error"]


async def test_past_max_streams_every_streaming_route_gets_503_and_health_answers(
        make_client: MakeClient) -> None:
    client = await make_client(max_streams=2, max_streams_per_client=2, retry_ms=3000)
    activity = client.app[STATE].activity  # type: ignore[union-attr]
    async with open_stream(client), open_stream(client):
        assert activity.active_tools == 2
        async with client.post("/api/mcp/v2/stream", json=WAIT) as response:
            await assert_refused(response, "server_busy")
        async with client.post("/api/mcp/v2/runs", json=WAIT) as response:
            await assert_refused(response, "server_busy")
        async with client.post("/api/mcp/v2/process", json=WAIT) as response:
            await assert_refused(response, "server_busy")
        async with client.get("/api/mcp/v2/stream/test?count=1") as response:
            await assert_refused(response, "server_busy")
        async with client.get("/api/mcp/v2/runs/0123456789abcdef/events") as response:
            await assert_refused(response, "server_busy")
        assert activity.active_tools == 2  # refused before any run started
        async with client.get("/health") as response:
            assert response.status == 200
            assert (await response.json())["capacity"] == {"in_use": 2, "max_streams": 2,
                                                          "max_streams_per_client": 2}
    # The slots come back with the streams.
    await eventually(lambda: _in_use(client, 0), what="slots released")
    async with open_stream(client):
        pass


async def test_per_client_cap_refuses_one_address_and_serves_another(make_client: MakeClient) -> None:
    client = await make_client(max_streams=10, max_streams_per_client=1, retry_ms=3000)
    async with open_stream(client):
        async with client.post("/api/mcp/v2/stream", json=WAIT) as response:
            await assert_refused(response, "client_busy")
        # Another address (all of 127/8 is loopback on Linux) still gets its stream.
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=connector) as other, \
                other.post(client.make_url("/api/mcp/v2/stream"), json=WAIT) as response:
            assert response.status == 200
            assert b"connected" in await response.content.readline() + await response.content.readline()


async def test_a_detached_run_holds_its_slot_until_it_ends(make_client: MakeClient) -> None:
    client = await make_client(max_streams=1)
    short = {"tool_name": "Wait", "arguments": {"seconds": 0.3}}
    async with client.post("/api/mcp/v2/runs", json=short) as response:
        assert response.status == 202
    async with client.post("/api/mcp/v2/runs", json=short) as response:
        assert response.status == 503
    await eventually(lambda: _in_use(client, 0), what="the run's slot released when it ended")
    async with client.post("/api/mcp/v2/runs", json=short) as response:
        assert response.status == 202


async def _in_use(client: TestClient, count: int) -> bool:
    async with client.get("/health") as response:
        return (await response.json())["capacity"]["in_use"] == count  # type: ignore[no-any-return]


def _limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def test_the_default_limit_comes_from_the_open_file_limit() -> None:
    process = subprocess.Popen([sys.executable, "-m", "rhetor_stream", "--port", "0"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_limit_open_files)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
            capacity = json.loads(response.read())["capacity"]
        assert capacity["max_streams"] == (1024 - FD_RESERVE) // 2
        assert capacity["max_streams_per_client"] == capacity["max_streams"] // 4
    finally:
        process.terminate()
        process.wait(timeout=10)
