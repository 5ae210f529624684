"""Shared fixtures and helpers. Real components (Redis, Chromium) are required in CI and optional locally."""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from rhetor_stream.settings import Settings
from rhetor_stream.sse.parser import ServerSentEvent, SSEParser, aiter_events
from rhetor_stream.web.app import create_app
from tests.fake_upstream import session, upstream  # noqa: F401  (fixtures for provider tests)

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ROOT = Path(__file__).resolve().parent.parent
FAST = {"simulated_tokens_per_s": 5000.0, "disconnect_poll": 0.02, "processing_tick": 0.2}

MakeClient = Callable[..., Awaitable[TestClient]]


def require_binary(name: str, why: str) -> str:
    """Return the path of `name`; fail in CI (where .ci/run installs it) and skip locally without it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: {why} (install it with: apt-get install -y {name})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 5.0, what: str = "") -> None:
    """Wait until `check()` is true (polling every 10 ms), or fail after `timeout` seconds.

    The timeout is a deadline, not a measurement: generous, because a fresh CI machine can be busy
    (Chromium builds its caches on first start) while the condition is only a few loop turns away.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)


# --- the server under test, in process ----------------------------------------------------------------

@pytest.fixture
def make_client(aiohttp_client: Any) -> MakeClient:
    """`await make_client(heartbeat=0.1)`: a test client for an app with those settings."""

    async def make(**overrides: Any) -> TestClient:
        return await aiohttp_client(create_app(Settings(**{**FAST, **overrides})))  # type: ignore[no-any-return]

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    return await make_client()


async def read_events(response: aiohttp.ClientResponse) -> list[ServerSentEvent]:
    """Every event of a finished stream, parsed by the project's own parser."""
    return [event async for event in aiter_events(response.content.iter_any())]


async def first_events(response: aiohttp.ClientResponse, limit: int | None = None) -> list[ServerSentEvent]:
    """The events of a stream, stopping after `limit` of them (the connection stays open)."""
    parser = SSEParser()
    events: list[ServerSentEvent] = []
    async for data in response.content.iter_any():
        events.extend(parser.feed(data))
        if limit is not None and len(events) >= limit:
            return events[:limit]
    return events


async def post_stream(client: TestClient, tool_name: str, arguments: dict[str, Any] | None = None,
                      **stream_options: Any) -> list[ServerSentEvent]:
    body: dict[str, Any] = {"tool_name": tool_name, "arguments": arguments or {}}
    if stream_options:
        body["stream_options"] = stream_options
    async with client.post("/api/mcp/v2/stream", json=body) as response:
        assert response.status == 200, await response.text()
        return await read_events(response)


class LiveReader:
    """Reads a stream as it arrives: `until(n)` returns once n events are in, `rest()` at its end;
    comments (heartbeats) are counted."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.events: list[ServerSentEvent] = []
        self.comments = 0
        self._parser = SSEParser(on_comment=self._comment)

    def _comment(self, text: str) -> None:
        self.comments += 1

    async def until(self, count: int) -> list[ServerSentEvent]:
        while len(self.events) < count:
            chunk = await self.response.content.readany()
            if not chunk:
                break
            self.events.extend(self._parser.feed(chunk))
        return self.events

    async def rest(self) -> list[ServerSentEvent]:
        return await self.until(sys.maxsize)

    def ids(self) -> list[int]:
        return [int(event.id.rsplit("-", 1)[1]) for event in self.events]


# --- MCP sessions over the test client ----------------------------------------------------------------

BOTH = "application/json, text/event-stream"


class Mcp:
    """A hand-driven MCP session over a test client."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.session_id = ""
        self.version = ""
        self.next_id = 0

    async def initialize(self, version: str = "2025-11-25") -> dict[str, Any]:
        response = await self.client.post("/mcp", json=request(0, "initialize", {
            "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}),
            headers={"Accept": BOTH})
        assert response.status == 200, await response.text()
        self.session_id = response.headers["Mcp-Session-Id"]
        body = await response.json()
        self.version = body["result"]["protocolVersion"]
        return body  # type: ignore[no-any-return]

    def headers(self, accept: str = BOTH, **extra: str) -> dict[str, str]:
        return {"Accept": accept, "Mcp-Session-Id": self.session_id, "MCP-Protocol-Version": self.version, **extra}

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        response = await self.client.post("/mcp", json=request(self.next_id, method, params),
                                          headers=self.headers("application/json"))
        assert response.status == 200, await response.text()
        return await response.json()  # type: ignore[no-any-return]

    async def stream(self, name: str, arguments: dict[str, Any], *, token: str | None = "p",
                     limit: int | None = None) -> list[ServerSentEvent]:
        """A tools/call read as an event stream; with `limit`, the connection is dropped after that many."""
        self.next_id += 1
        params: dict[str, Any] = {"name": name, "arguments": arguments}
        if token is not None:
            params["_meta"] = {"progressToken": token}
        async with self.client.post("/mcp", json=request(self.next_id, "tools/call", params),
                                    headers=self.headers()) as response:
            assert response.status == 200, await response.text()
            assert response.content_type == "text/event-stream"
            return await first_events(response, limit)

    async def resume(self, last_event_id: str, *, limit: int | None = None) -> list[ServerSentEvent]:
        async with self.client.get("/mcp", headers=self.headers("text/event-stream",
                                                                **{"Last-Event-ID": last_event_id})) as response:
            assert response.status == 200, await response.text()
            return await first_events(response, limit)


def request(id: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        body["params"] = params
    return body


@pytest.fixture
async def mcp(client: TestClient) -> Mcp:
    opened = Mcp(client)
    await opened.initialize()
    return opened


# --- real processes ----------------------------------------------------------------------------------

def spawn_server(*args: str, cwd: Path = ROOT,
                 env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """A real `python -m rhetor_stream --port 0` process and its base URL (read from its first line)."""
    process = subprocess.Popen([sys.executable, "-m", "rhetor_stream", "--port", "0", *args], cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"Serving on (http://127\.0\.0\.1:\d+)", line)
    if match is None:
        process.kill()
        pytest.fail(f"no address in {line!r}: {process.stderr.read() if process.stderr else ''}")
    return process, match.group(1)


def stop_server(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_redis(port: int, *args: str) -> subprocess.Popen[bytes]:
    """A real redis-server on `port`, persisting nothing, once it accepts connections."""
    binary = require_binary("redis-server", "the Redis event store tests need a real Redis")
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)


class DisposableRedis:
    """A redis-server of one test's own, to stop and start again (same port) under a running server.

    `stop()` loses the data, as a restart without persistence does; `stop(keep_data=True)` saves it
    first (SHUTDOWN SAVE into the test's directory), so the restart finds what was written before.
    `pause()` and `resume()` freeze it instead (SIGSTOP/SIGCONT): connections stay open, unanswered.
    """

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_redis(self.port, "--dir", str(self._directory))

    def stop(self, *, keep_data: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if keep_data:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                sock.sendall(b"SHUTDOWN SAVE\r\n")
                sock.recv(100)  # the server closes the connection once it saved
        else:
            (self._directory / "dump.rdb").unlink(missing_ok=True)
            self.process.kill()
        self.process.wait(timeout=10)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


async def redis_outage(server: DisposableRedis, seconds: float, *, keep_data: bool | None) -> None:
    """Stop `server`, wait `seconds` (the event loop keeps running), start it again on its port;
    `keep_data=None` freezes it for that long instead."""
    if keep_data is None:
        server.pause()
        await asyncio.sleep(seconds)
        server.resume()
        return
    await asyncio.to_thread(server.stop, keep_data=keep_data)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(server.start)


@pytest.fixture
def disposable_redis(tmp_path: Path) -> Iterator[DisposableRedis]:
    server = DisposableRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server of the test session's own, on a free port."""
    port = free_port()
    process = start_redis(port)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)
