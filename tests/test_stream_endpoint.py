"""POST /api/mcp/v2/stream: event order, shapes, ids, options and the errors of a running tool."""
from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from rhetor_stream.settings import Settings
from rhetor_stream.tools import ToolError, ToolRegistry, mcp_tool
from rhetor_stream.web.app import create_app
from tests.conftest import FAST, post_stream, read_events


@mcp_tool(name="Refuse")
async def refuse(reason: str) -> None:
    raise ToolError(f"refused: {reason}", code="refused")


@mcp_tool(name="Crash")
async def crash() -> None:
    raise RuntimeError("secret internal detail")


@mcp_tool(name="Unserialisable")
async def unserialisable() -> object:
    return object()


@mcp_tool(name="SyncAdd")
def sync_add(a: int, b: int) -> int:
    return a + b


failing = ToolRegistry()
failing.add(refuse, crash, unserialisable, sync_add)


async def test_plain_tool_event_order_and_shapes(client: TestClient) -> None:
    events = await post_stream(client, "Echo", {"text": "hello"})
    types = [event.event for event in events]
    assert types[0] == "connected"
    assert types[-2:] == ["complete", "disconnect"]
    assert set(types[1:-2]) == {"progress"}
    connected = events[0].json()
    assert connected["tool_name"] == "Echo" and len(connected["run_id"]) == 32
    assert {"timestamp", "message"} <= connected.keys()
    stages = [event.json()["stage"] for event in events if event.event == "progress"]
    assert stages[0] == "starting" and stages[-1] == "finalizing"
    finalizing = [event.json() for event in events if event.event == "progress"][-1]
    assert finalizing["percentage"] == 100 and "elapsed" in finalizing
    complete = events[-2].json()
    assert complete["result"] == {"text": "hello"}
    assert complete["execution_time"] >= 0 and "timestamp" in complete
    assert events[-1].json()["reason"] == "complete"
    prefix = connected["run_id"][:8]  # ids belong to the run: "<run prefix>-<n>"
    assert [event.id for event in events] == [f"{prefix}-{n}" for n in range(1, len(events) + 1)]


async def test_headers_and_first_frame_carries_retry(client: TestClient) -> None:
    body = {"tool_name": "Echo", "arguments": {"text": "x"}}
    async with client.post("/api/mcp/v2/stream", json=body) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        raw = await response.read()
    first, *rest = raw.split(b"\n\n")
    assert first.startswith(b"id: ") and b"-1\nevent: connected\nretry: " in first
    assert all(b"retry:" not in frame for frame in rest)


async def test_include_progress_false_sends_no_progress(client: TestClient) -> None:
    events = await post_stream(client, "Echo", {"text": "x"}, include_progress=False)
    assert [event.event for event in events] == ["connected", "complete", "disconnect"]


@pytest.mark.parametrize("chunk_size", ["sentence", "word", "paragraph", "none"])
async def test_stream_text_chunks_join_back(client: TestClient, chunk_size: str) -> None:
    text = "Dr. Smith paid 3.14 dollars. Then he left!\n\nA new paragraph? Yes."
    events = await post_stream(client, "StreamText", {"text": text, "delay_ms": 0}, chunk_size=chunk_size)
    chunks = [event.json()["content"]["content"] for event in events if event.event == "chunk"]
    assert "".join(chunks) == text
    assert events[-2].json()["result"]["chunks"] == len(chunks)
    if chunk_size == "sentence":
        assert chunks[0] == "Dr. Smith paid 3.14 dollars. "
    assert not any(event.event == "progress" for event in events)  # streaming tools report their own


@pytest.fixture
async def failing_client(aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(create_app(Settings(**FAST), tools=failing))  # type: ignore[no-any-return]


async def test_tool_error_becomes_error_event(failing_client: TestClient) -> None:
    events = await post_stream(failing_client, "Refuse", {"reason": "no"})
    assert [event.event for event in events][-2:] == ["error", "disconnect"]
    error = events[-2].json()
    assert error["error"] == "refused: no" and error["code"] == "refused" and error["tool_name"] == "Refuse"
    assert events[-1].json()["reason"] == "error"


async def test_crash_is_an_error_event_without_traceback(failing_client: TestClient,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    events = await post_stream(failing_client, "Crash")
    error = events[-2].json()
    assert error["code"] == "tool_error"
    assert "RuntimeError" in error["error"] and "Traceback" not in error["error"]
    assert "Traceback" in caplog.text or any(record.exc_info for record in caplog.records)


async def test_unserialisable_result_is_named(failing_client: TestClient) -> None:
    events = await post_stream(failing_client, "Unserialisable")
    assert events[-2].event == "error" and events[-2].json()["code"] == "invalid_result"


async def test_sync_tool_runs_in_executor(failing_client: TestClient) -> None:
    events = await post_stream(failing_client, "SyncAdd", {"a": 2, "b": 3})
    assert events[-2].json()["result"] == 5


async def test_process_endpoint(client: TestClient, failing_client: TestClient) -> None:
    response = await client.post("/api/mcp/v2/process", json={"tool_name": "Echo", "arguments": {"text": "a"}})
    body = await response.json()
    assert response.status == 200 and body["success"] is True and body["result"] == {"text": "a"}
    assert body["error"] is None and body["execution_time"] >= 0
    response = await failing_client.post("/api/mcp/v2/process", json={"tool_name": "Refuse",
                                                                       "arguments": {"reason": "r"}})
    body = await response.json()
    assert body["success"] is False and body["error"] == "refused: r" and body["code"] == "refused"
    body = await (await client.post("/api/mcp/v2/process", json={
        "tool_name": "StreamText", "arguments": {"text": "One. Two.", "delay_ms": 0}})).json()
    assert body["result"] == {"text": "One. Two.", "chunks": 2}


async def test_tools_and_health(client: TestClient) -> None:
    tools = {tool["name"]: tool for tool in await (await client.get("/api/mcp/v2/tools")).json()}
    assert {"Echo", "Wait", "StreamText"} <= tools.keys()
    assert tools["StreamText"]["streaming"] is True and tools["Echo"]["streaming"] is False
    assert tools["Wait"]["input_schema"]["properties"]["seconds"] == {"type": "number", "minimum": 0,
                                                                     "maximum": 86400}
    health = await (await client.get("/health")).json()
    assert health["status"] == "ok" and health["active_streams"] == 0 and health["active_tools"] == 0
    assert health["version"]


async def test_test_stream_contract(client: TestClient) -> None:
    async with client.get("/api/mcp/v2/stream/test?count=3&size=10&interval_ms=0") as response:
        events = await read_events(response)
    assert [event.event for event in events] == ["connected", "progress", "chunk", "chunk", "chunk",
                                                 "complete", "disconnect"]
    chunk = events[2].json()["content"]
    assert len(chunk["content"]) == 10 and chunk["index"] == 0
    assert events[-2].json()["result"] == {"chunks": 3}


@pytest.mark.parametrize("query, argument", [("count=x", "count"), ("count=-1", "count"),
                                             ("size=0", "size"), ("interval_ms=99999999", "interval_ms")])
async def test_test_stream_rejects_bad_bounds(client: TestClient, query: str, argument: str) -> None:
    response = await client.get(f"/api/mcp/v2/stream/test?{query}")
    assert response.status == 400
    body = await response.json()
    assert body["code"] == "invalid_query" and body["argument"] == argument and argument in body["error"]
