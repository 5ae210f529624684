"""Regression: an `Origin` header that is not a URL was a 500 (found by the fuzzer).

The same-origin check split the Origin with `urlsplit`, which raises ValueError on an unclosed IPv6
bracket (`http://[::1`); the error middleware answered 500 with a traceback in the log. Such an
origin matches no host, so it is refused like any other foreign origin: 403.
"""
from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient


@pytest.mark.parametrize("origin", ["http://[::1", "http://[", "https://[x]y:1:2", "http://]"])
async def test_an_origin_that_is_not_a_url_is_refused_with_403(client: TestClient, origin: str) -> None:
    response = await client.post("/api/mcp/v2/process", json={"tool_name": "Echo", "arguments": {"text": "a"}},
                                 headers={"Origin": origin})
    body = await response.json()
    assert response.status == 403 and "--cors-origin" in body["error"], body
