"""The stream machinery: disconnects cancel work, slow clients cost bounded memory, heartbeats,
progress throttling. Cancellation latency is a functional promise (the work stops when the tab closes),
so it is asserted here; throughput figures live in the benchmark."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from rhetor_stream.settings import Settings
from rhetor_stream.sse.parser import SSEParser
from rhetor_stream.tools import StreamCallback, ToolContext, ToolRegistry, mcp_tool, streaming_tool
from rhetor_stream.web.app import create_app
from tests.conftest import FAST, MakeClient, post_stream, read_events

produced: dict[str, int] = {}


@mcp_tool(name="Flood")
@streaming_tool
async def flood(size: int, *, _stream_callback: StreamCallback) -> None:
    """Produces chunks as fast as the channel accepts them, counting each one."""
    produced["flood"] = 0
    payload = {"content": {"content": "x" * size}}
    while True:
        await _stream_callback("chunk", payload)
        produced["flood"] += 1


@mcp_tool(name="Sleepy")
async def sleepy(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "rested"


@mcp_tool(name="Chatty")
@streaming_tool
async def chatty(reports: int, *, _stream_callback: StreamCallback) -> None:
    for index in range(1, reports + 1):
        await _stream_callback("progress", {"stage": "working", "percentage": index * 50 / reports,
                                            "message": f"step {index}"})
    await asyncio.sleep(0.35)
    await _stream_callback("progress", {"stage": "done", "percentage": 100, "message": "done"})


@mcp_tool(name="Reporter")
async def reporter(_context: ToolContext) -> None:
    await _context.report_progress(40, "forty")
    await asyncio.sleep(0.5)


tools = ToolRegistry()
tools.add(flood, sleepy, chatty, reporter)


@pytest.fixture
async def tool_client(aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(create_app(Settings(**FAST), tools=tools))  # type: ignore[no-any-return]


async def _health(client: TestClient) -> dict[str, Any]:
    return await (await client.get("/health")).json()  # type: ignore[no-any-return]


async def _until(client: TestClient, key: str, value: int, timeout: float = 2.0) -> float:
    """Seconds until /health shows `key == value`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while (await _health(client))[key] != value:
        assert loop.time() - started < timeout, f"/health never showed {key}={value}"
        await asyncio.sleep(0.005)
    return loop.time() - started


def _our_tasks() -> set[str]:
    """Tasks other than aiohttp's per-connection handlers (keep-alive connections come and go)."""
    return {task.get_name() for task in asyncio.all_tasks()
            if "RequestHandler.start" not in repr(task.get_coro())}


async def _first_event(response: Any) -> str:
    parser = SSEParser()
    async for data in response.content.iter_any():
        for event in parser.feed(data):
            return event.event
    raise AssertionError("stream ended before its first event")


async def test_disconnect_cancels_the_tool_within_100ms(client: TestClient) -> None:
    tasks_before = _our_tasks()
    response = await client.post("/api/mcp/v2/stream", json={"tool_name": "Wait", "arguments": {"seconds": 30}})
    assert await _first_event(response) == "connected"
    health = await _health(client)
    assert health["active_tools"] == 1 and health["active_streams"] == 1
    response.close()
    assert await _until(client, "active_tools", 0) < 0.1
    await _until(client, "active_streams", 0)
    await asyncio.sleep(0.05)
    assert _our_tasks() == tasks_before  # nothing of the run is left behind


async def test_disconnect_cancels_a_process_call(client: TestClient) -> None:
    request = asyncio.ensure_future(client.post("/api/mcp/v2/process",
                                                json={"tool_name": "Wait", "arguments": {"seconds": 30}}))
    await _until(client, "active_tools", 1)
    request.cancel()
    assert await _until(client, "active_tools", 0) < 0.1


async def test_slow_client_gets_backpressure_not_unbounded_memory(tool_client: TestClient) -> None:
    response = await tool_client.post("/api/mcp/v2/stream", json={"tool_name": "Flood",
                                                                   "arguments": {"size": 65536}})
    await asyncio.sleep(0.3)  # the client reads nothing: buffers fill, the producer must stop
    first = produced["flood"]
    await asyncio.sleep(0.3)
    assert produced["flood"] == first, "the producer kept going for a client that reads nothing"
    # The run may be one window (256) ahead of its subscriber, whose queue holds another 256; the
    # rest is what the socket buffers hold at 64 KiB an event.
    assert first < 2 * 256 + 400
    response.close()
    await _until(tool_client, "active_tools", 0)


async def test_stalled_client_is_dropped_after_send_timeout(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(Settings(**{**FAST, "send_timeout": 0.3}), tools=tools))
    response = await client.post("/api/mcp/v2/stream", json={"tool_name": "Flood", "arguments": {"size": 65536}})
    await _until(client, "active_tools", 1)
    await _until(client, "active_tools", 0, timeout=3)
    await _until(client, "active_streams", 0)
    response.close()


async def test_heartbeat_comment_on_an_idle_stream(make_client: MakeClient) -> None:
    client = await make_client(heartbeat=0.1)
    comments: list[str] = []
    async with client.post("/api/mcp/v2/stream", json={"tool_name": "Wait", "arguments": {"seconds": 0.45},
                                                       "stream_options": {"include_progress": False}}) as response:
        parser = SSEParser(on_comment=comments.append)
        async for data in response.content.iter_any():
            parser.feed(data)
    assert comments.count("ping") >= 2


async def test_heartbeat_zero_disables_it(make_client: MakeClient) -> None:
    client = await make_client(heartbeat=0)
    async with client.post("/api/mcp/v2/stream", json={"tool_name": "Wait", "arguments": {"seconds": 0.3},
                                                       "stream_options": {"include_progress": False}}) as response:
        raw = await response.read()
    assert b": ping" not in raw


async def test_progress_is_throttled_latest_wins_and_final_kept(tool_client: TestClient) -> None:
    events = await post_stream(tool_client, "Chatty", {"reports": 1000})
    progress = [event.json() for event in events if event.event == "progress"]
    assert len(progress) <= 4  # first at once, the held latest after 100 ms, the final
    assert progress[0]["percentage"] == 0.05
    assert progress[-2]["percentage"] == 50  # the latest held report was delivered, not dropped
    assert progress[-1]["percentage"] == 100 and progress[-1]["stage"] == "done"
    assert all("elapsed" in item for item in progress)


async def test_plain_tool_gets_honest_processing_events(tool_client: TestClient) -> None:
    events = await post_stream(tool_client, "Sleepy", {"seconds": 0.5})
    progress = [event.json() for event in events if event.event == "progress"]
    stages = [item["stage"] for item in progress]
    assert stages[0] == "starting" and stages[-1] == "finalizing" and "processing" in stages
    processing = [item for item in progress if item["stage"] == "processing"]
    assert all(item["percentage"] is None for item in processing)  # nothing invented
    elapsed = [item["elapsed"] for item in processing]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0


async def test_reported_percentage_is_carried_by_processing_events(tool_client: TestClient) -> None:
    events = await post_stream(tool_client, "Reporter")
    processing = [event.json() for event in events if event.event == "progress"
                  and event.json()["stage"] == "processing"]
    assert processing[0]["percentage"] == 40 and processing[0]["message"] == "forty"
    assert all(item["percentage"] == 40 for item in processing)


async def test_many_concurrent_streams_all_complete(client: TestClient) -> None:
    async def one() -> list[str]:
        async with client.get("/api/mcp/v2/stream/test?count=50&size=32&interval_ms=0") as response:
            return [event.event for event in await read_events(response)]

    results = await asyncio.gather(*(one() for _ in range(50)))
    assert all(types.count("chunk") == 50 and types[-1] == "disconnect" for types in results)
