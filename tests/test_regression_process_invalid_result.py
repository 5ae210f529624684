"""Regression (issue 12, item 1): `/process` and `/stream` disagreed about a tool's non-JSON result.

`/process` called the tool itself and mapped its outcome itself: a tool returning a `set` (or any
object JSON cannot hold) crashed while the answer was encoded, a 500 `internal_error`, where
`/stream` (a `ToolRun`) sent a clean `invalid_result` error event. Now `/process` is a `ToolRun`
too, and its answer is made of the run's final frame: the same code and message on both routes.
"""
from __future__ import annotations

from typing import Any

from rhetor_stream.settings import Settings
from rhetor_stream.tools import ToolRegistry, mcp_tool
from rhetor_stream.web.app import create_app
from tests.conftest import FAST, post_stream


@mcp_tool(name="ReturnsASet")
async def returns_a_set() -> object:
    return {1, 2}


odd = ToolRegistry()
odd.add(returns_a_set)


async def test_a_non_json_result_is_invalid_result_on_process_as_on_stream(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(Settings(**FAST), tools=odd))
    streamed = (await post_stream(client, "ReturnsASet"))[-2]
    assert streamed.event == "error" and streamed.json()["code"] == "invalid_result"

    response = await client.post("/api/mcp/v2/process", json={"tool_name": "ReturnsASet"})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["success"] is False and body["result"] is None
    assert body["code"] == "invalid_result" and body["error"] == streamed.json()["error"]
    assert body["execution_time"] >= 0
