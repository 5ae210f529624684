"""The official MCP Python SDK's client against a real server process: the handshake (its 2026 probe
falls back to initialize), tools, streamed progress, error results, cancellation, and a stream cut
mid-call that the SDK resumes with Last-Event-ID; then the same resume through a second process on
Redis, over raw HTTP, since the SDK cannot be told to reconnect elsewhere; and the stdio transport."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import anyio
import pytest
from mcp import Client, StdioServerParameters

from rhetor_stream.sse.parser import SSEParser
from tests.conftest import ROOT, eventually, first_events, spawn_server, stop_server
from tests.proxy import CuttingProxy

TEXT = " ".join(f"Sentence number {n} is here." for n in range(1, 13))
FAST = ("--log-level", "warning", "--disconnect-poll", "0.02", "--retry-ms", "100",
        "--simulated-tokens-per-s", "2000", "--processing-tick", "0.2")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    process, url = spawn_server(*FAST)
    yield url
    stop_server(process)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Progress:
    def __init__(self) -> None:
        self.seen: list[tuple[float, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((progress, message))

    @property
    def texts(self) -> list[str]:
        return [message or "" for _, message in self.seen]


async def _health(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(f"{url}/health") as response:
        return await response.json()  # type: ignore[no-any-return]


async def test_sdk_lists_tools_and_calls_echo(server: str) -> None:
    async with Client(f"{server}/mcp") as client:
        assert client.protocol_version == "2025-11-25"
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert {"Echo", "Wait", "StreamText", "SendMessageToSpecialistStream"} <= set(names)
        result = await client.call_tool("Echo", {"text": "hello"})
        assert not result.is_error
        assert result.structured_content == {"text": "hello"}
        assert result.content[0].text == '{"text":"hello"}'  # type: ignore[union-attr]


async def test_sdk_gets_every_chunk_as_progress_in_order(server: str) -> None:
    async with Client(f"{server}/mcp") as client:
        progress = Progress()
        result = await client.call_tool("StreamText", {"text": TEXT, "delay_ms": 5}, progress_callback=progress)
        assert "".join(progress.texts) == TEXT
        values = [value for value, _ in progress.seen]
        assert values == sorted(set(values))
        assert result.structured_content == {"text": TEXT, "chunks": 12}


async def test_sdk_streams_a_specialist_answer(server: str) -> None:
    async with Client(f"{server}/mcp") as client:
        progress = Progress()
        result = await client.call_tool("SendMessageToSpecialistStream",
                                        {"specialist_id": "planner", "message": "Plan a small launch"},
                                        progress_callback=progress)
        assert not result.is_error, result
        answer = result.structured_content["content"]  # type: ignore[index]
        # Stage reports come between the chunks; the chunks alone, in order, are the answer.
        remaining = answer
        for text in progress.texts:
            if text and remaining.startswith(text):
                remaining = remaining[len(text):]
        assert remaining == "" and answer


async def test_sdk_bad_arguments_are_an_error_result(server: str) -> None:
    async with Client(f"{server}/mcp") as client:
        result = await client.call_tool("Wait", {"seconds": "soon"})
        assert result.is_error
        assert "seconds" in result.content[0].text  # type: ignore[union-attr]


async def test_sdk_cancelling_a_wait_stops_the_run(server: str, http: aiohttp.ClientSession) -> None:
    async with Client(f"{server}/mcp") as client:
        async with anyio.create_task_group() as group:
            group.start_soon(client.call_tool, "Wait", {"seconds": 60})

            async def running() -> bool:
                return (await _health(http, server))["active_tools"] == 1

            await eventually(running, what="the Wait started")
            group.cancel_scope.cancel()  # the SDK sends notifications/cancelled

        async def stopped() -> bool:
            return (await _health(http, server))["active_tools"] == 0

        # The resume grace is 60 s: only the cancellation can end the run this soon.
        await eventually(stopped, what="the Wait cancelled")
        assert (await client.call_tool("Echo", {"text": "still here"})).structured_content == {"text": "still here"}


async def test_sdk_resumes_a_cut_stream_without_gap_or_duplicate(server: str) -> None:
    port = int(server.rpartition(":")[2])
    with CuttingProxy(port, cut_after=900, target=b"POST /mcp ", only_if=b"text/event-stream") as proxy:
        async with Client(f"http://127.0.0.1:{proxy.port}/mcp") as client:
            progress = Progress()
            result = await client.call_tool("StreamText", {"text": TEXT, "delay_ms": 20},
                                            progress_callback=progress)
        assert proxy.cuts == 1
    assert "".join(progress.texts) == TEXT
    assert result.structured_content == {"text": TEXT, "chunks": 12}


# --- a second process on Redis ------------------------------------------------------------------------

@pytest.fixture
def redis_servers(redis_url: str) -> Iterator[tuple[str, str]]:
    processes: list[subprocess.Popen[str]] = []
    urls = []
    for _ in range(2):
        process, url = spawn_server(*FAST, "--event-store", redis_url)
        processes.append(process)
        urls.append(url)
    yield urls[0], urls[1]
    for process in processes:
        stop_server(process)


async def _initialize(http: aiohttp.ClientSession, url: str) -> dict[str, str]:
    """A session opened on `url`: the headers of every later request."""
    accept = {"Accept": "application/json, text/event-stream"}
    async with http.post(f"{url}/mcp", headers=accept, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}) as response:
        return {**accept, "Mcp-Session-Id": response.headers["Mcp-Session-Id"],
                "MCP-Protocol-Version": "2025-11-25"}


@pytest.mark.redis
async def test_a_stream_cut_on_one_process_resumes_on_another(redis_servers: tuple[str, str],
                                                               http: aiohttp.ClientSession) -> None:
    a, b = redis_servers
    session = await _initialize(http, a)
    call = {"jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
            "params": {"name": "StreamText", "arguments": {"text": TEXT, "delay_ms": 25},
                       "_meta": {"progressToken": 42}}}
    async with http.post(f"{a}/mcp", headers=session, json=call) as response:
        first = await first_events(response, limit=4)
    async with http.get(f"{b}/mcp", headers={**session, "Last-Event-ID": first[-1].id}) as response:
        assert response.status == 200, await response.text()
        rest = await first_events(response)
    events = first + rest
    prefix = first[0].id.rpartition("-")[0]
    assert [event.id for event in events] == [f"{prefix}-{n}" for n in range(1, len(events) + 1)]
    messages = [json.loads(event.data) for event in events if event.data]
    assert "".join(message["params"]["message"] for message in messages[:-1]) == TEXT
    assert {message["params"]["progressToken"] for message in messages[:-1]} == {42}
    assert messages[-1]["id"] == "call-1" and messages[-1]["result"]["structuredContent"]["chunks"] == 12


@pytest.mark.redis
async def test_a_call_on_one_process_is_cancelled_through_another(redis_servers: tuple[str, str],
                                                                   http: aiohttp.ClientSession) -> None:
    a, b = redis_servers
    session = await _initialize(http, a)
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "Wait", "arguments": {"seconds": 60}}}
    async with http.post(f"{a}/mcp", headers=session, json=call) as response:
        parser = SSEParser()
        first = True
        async for data in response.content.iter_any():
            events = parser.feed(data)
            if first and events:  # the call runs on A: cancel it through B
                first = False
                async with http.post(f"{b}/mcp", headers=session, json={
                        "jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}) as cancel:
                    assert cancel.status == 202
            answers = [json.loads(event.data) for event in events if event.data]
            if answers:
                break
    assert answers[-1]["id"] == 7 and answers[-1]["result"]["structuredContent"]["code"] == "cancelled"
    assert (await _health(http, a))["active_tools"] == 0


# --- stdio --------------------------------------------------------------------------------------------

STDIO = StdioServerParameters(command=sys.executable, args=["-m", "rhetor_stream.mcp", *FAST], cwd=str(ROOT))


async def test_sdk_over_stdio_lists_calls_and_streams() -> None:
    async with Client(STDIO) as client:
        assert "StreamText" in [tool.name for tool in (await client.list_tools()).tools]
        assert (await client.call_tool("Echo", {"text": "pipe"})).structured_content == {"text": "pipe"}
        progress = Progress()
        result = await client.call_tool("StreamText", {"text": TEXT, "delay_ms": 0}, progress_callback=progress)
        assert "".join(progress.texts) == TEXT and not result.is_error
        assert (await client.call_tool("Wait", {"seconds": "x"})).is_error


def test_stdio_cancels_a_call_and_survives_bad_lines() -> None:
    process = subprocess.Popen([sys.executable, "-m", "rhetor_stream.mcp", *FAST], cwd=ROOT, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdin is not None and process.stdout is not None

    def send(message: dict[str, Any] | str) -> None:
        assert process.stdin is not None
        process.stdin.write((message if isinstance(message, str) else json.dumps(message)) + "\n")
        process.stdin.flush()

    def receive() -> dict[str, Any]:
        assert process.stdout is not None
        return json.loads(process.stdout.readline())  # type: ignore[no-any-return]

    try:
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        assert receive()["result"]["protocolVersion"] == "2025-06-18"
        send("{oops")
        assert receive()["error"]["code"] == -32700
        send({"jsonrpc": "2.0", "id": "w", "method": "tools/call", "params": {
            "name": "Wait", "arguments": {"seconds": 60}, "_meta": {"progressToken": 9}}})
        assert receive()["params"]["message"].startswith("0% Starting Wait")  # it runs
        send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "w"}})
        while "id" not in (answer := receive()):
            pass
        assert answer["id"] == "w" and answer["result"]["structuredContent"]["code"] == "cancelled"
        send({"jsonrpc": "2.0", "id": 2, "method": "nope"})
        assert receive()["error"]["code"] == -32601
        process.stdin.close()
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
