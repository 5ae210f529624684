"""Regression: run ids from the URL reached the store's key names unchecked (issue 9, item 6).

With the Redis store, `GET /runs/<id>:events` read the hash key of another run's *event stream*
and failed with WRONGTYPE: a 500. Every `/runs/{run_id}` route now checks that the id has the shape
`new_run_id()` gives it before any store is asked, and anything else is an unknown run (404).
"""
from __future__ import annotations

import uuid

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import MakeClient, read_events


@pytest.fixture(params=["memory", "redis"])
async def run_client(request: pytest.FixtureRequest, make_client: MakeClient) -> TestClient:
    store = "memory" if request.param == "memory" else request.getfixturevalue("redis_url")
    return await make_client(event_store=store)


async def test_ids_not_shaped_like_a_run_id_are_unknown_runs(run_client: TestClient) -> None:
    async with run_client.post("/api/mcp/v2/stream",
                               json={"tool_name": "Echo", "arguments": {"text": "a"}}) as response:
        run_id = (await read_events(response))[0].json()["run_id"]
    odd = [f"{run_id}:events", f"{run_id}:run", run_id.upper(), run_id + "0", run_id[:-1], "nope",
           "%2A", "%00", "%FF", "%E2%80%AE" + run_id[3:], "a" * 5000]
    for text in odd:
        for method, path in (("GET", ""), ("DELETE", ""), ("GET", "/events")):
            response = await run_client.request(method, f"/api/mcp/v2/runs/{text}{path}")
            body = await response.json()
            assert response.status == 404 and body["code"] == "unknown_run", (method, text, path, body)
            assert "32 lowercase hexadecimal digits" in body["error"] and len(body["error"]) < 200


async def test_a_well_shaped_unknown_id_is_still_what_it_was(run_client: TestClient) -> None:
    unknown = uuid.uuid4().hex
    assert (await run_client.get(f"/api/mcp/v2/runs/{unknown}")).status == 404
    assert (await run_client.delete(f"/api/mcp/v2/runs/{unknown}")).status == 404
    assert (await run_client.get(f"/api/mcp/v2/runs/{unknown}/events")).status == 204
