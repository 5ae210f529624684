"""Problems found before a stream starts: plain JSON errors with the status that names them."""
from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import MakeClient


@pytest.mark.parametrize("endpoint", ["/api/mcp/v2/stream", "/api/mcp/v2/process"])
@pytest.mark.parametrize("body, status, code, mentions", [
    (b"{not json", 400, "malformed_json", "not valid JSON"),
    (b"[1, 2]", 400, "malformed_request", "JSON object"),
    (b'{"arguments": {}}', 400, "missing_tool_name", "tool_name"),
    (b'{"tool_name": 7}', 400, "missing_tool_name", "tool_name"),
    (b'{"tool_name": "Nope"}', 404, "unknown_tool", "Nope"),
    (b'{"tool_name": "Echo", "arguments": {}}', 400, "invalid_arguments", "'text'"),
    (b'{"tool_name": "Echo", "arguments": {"text": 5}}', 400, "invalid_arguments", "expected a string"),
    (b'{"tool_name": "Echo", "arguments": {"text": "a", "x": 1}}', 400, "invalid_arguments", "'x'"),
    (b'{"tool_name": "Echo", "arguments": [1]}', 400, "invalid_arguments", "JSON object"),
    (b'{"tool_name": "Wait", "arguments": {"seconds": -1}}', 400, "invalid_arguments", "at least 0"),
    (b'{"tool_name": "Wait", "arguments": {"seconds": true}}', 400, "invalid_arguments", "boolean"),
    (b'{"tool_name": "Echo", "arguments": {"text": "a"}, "stream_options": {"chunk_size": "page"}}',
     400, "invalid_arguments", "chunk_size"),
    (b'{"tool_name": "Echo", "arguments": {"text": "a"}, "stream_options": {"speed": 1}}',
     400, "invalid_arguments", "speed"),
    (b'{"tool_name": "Echo", "argument": {}}', 400, "malformed_request", "argument"),
])
async def test_bad_requests(client: TestClient, endpoint: str, body: bytes, status: int, code: str,
                            mentions: str) -> None:
    response = await client.post(endpoint, data=body, headers={"Content-Type": "application/json"})
    assert response.status == status
    assert response.content_type == "application/json"
    payload: dict[str, Any] = await response.json()
    assert payload["code"] == code
    assert mentions in payload["error"]


async def test_wrong_content_type_is_415(client: TestClient) -> None:
    response = await client.post("/api/mcp/v2/stream", data=b"tool_name=Echo",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 415
    assert "application/json" in (await response.json())["error"]


async def test_body_over_limit_is_413(make_client: MakeClient) -> None:
    client = await make_client(max_body_bytes=100)
    response = await client.post("/api/mcp/v2/stream", json={"tool_name": "Echo",
                                                              "arguments": {"text": "x" * 200}})
    assert response.status == 413
    payload = await response.json()
    assert payload["code"] == "body_too_large" and "100 bytes" in payload["error"]


async def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    response = await client.get("/api/mcp/v2/nothing")
    assert response.status == 404 and (await response.json())["code"] == "not_found"
    response = await client.get("/api/mcp/v2/stream")
    assert response.status == 405 and (await response.json())["code"] == "method_not_allowed"
    assert response.headers["Allow"] == "POST"


async def test_a_path_no_route_takes_still_passes_the_security_checks(client: TestClient) -> None:
    """No route takes it, and yet its Host is checked (a rebinding page learns nothing more here)."""
    response = await client.get("/nowhere", headers={"Host": "evil.example"})
    assert response.status == 421 and (await response.json())["code"] == "host_not_allowed"
    response = await client.put("/", headers={"Host": "evil.example"})
    assert response.status == 421


async def test_cors_allows_configured_origins_only(make_client: MakeClient) -> None:
    client = await make_client(cors_origin=("http://app.example",))
    preflight = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    response = await client.options("/api/mcp/v2/stream", headers=preflight)
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://app.example"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    response = await client.options("/api/mcp/v2/stream", headers={**preflight, "Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
