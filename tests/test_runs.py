"""Runs: detached execution, replay after Last-Event-ID with no gap and no duplicate, status, cancel,
retention and the resume grace of POST /stream; the same tests against the memory and Redis stores."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from rhetor_stream.sse.parser import ServerSentEvent, SSEParser
from tests.conftest import MakeClient, eventually, read_events

TEXT = " ".join(f"Sentence number {n} is here." for n in range(1, 13))


@pytest.fixture(params=["memory", "redis"])
async def run_client(request: pytest.FixtureRequest, make_client: MakeClient) -> TestClient:
    store = "memory" if request.param == "memory" else request.getfixturevalue("redis_url")
    return await make_client(event_store=store, run_retention=0.5)


async def _start(client: TestClient, tool: str, arguments: dict[str, Any]) -> str:
    response = await client.post("/api/mcp/v2/runs", json={"tool_name": tool, "arguments": arguments})
    assert response.status == 202
    body = await response.json()
    assert body["events_url"] == f"/api/mcp/v2/runs/{body['run_id']}/events"
    return str(body["run_id"])


async def _final_status(client: TestClient, run_id: str) -> str:
    async def status() -> str:
        return str((await (await client.get(f"/api/mcp/v2/runs/{run_id}")).json())["status"])

    async def ended() -> bool:
        return await status() != "running"

    await eventually(ended, what=f"run {run_id} ended")
    return await status()


async def _read(client: TestClient, run_id: str, *, limit: int | None = None,
                headers: dict[str, str] | None = None, query: str = "") -> list[ServerSentEvent]:
    """Events of a run's stream; with `limit`, drop the connection after that many."""
    events: list[ServerSentEvent] = []
    parser = SSEParser()
    async with client.get(f"/api/mcp/v2/runs/{run_id}/events{query}", headers=headers or {}) as response:
        assert response.status == 200, await response.text()
        async for data in response.content.iter_any():
            events.extend(parser.feed(data))
            if limit is not None and len(events) >= limit:
                return events[:limit]
    return events


async def test_resume_with_last_event_id_gets_exactly_the_missing_events(run_client: TestClient) -> None:
    run_id = await _start(run_client, "StreamText", {"text": TEXT, "delay_ms": 20})
    first = await _read(run_client, run_id, limit=4)
    rest = await _read(run_client, run_id, headers={"Last-Event-ID": first[-1].id})
    events = first + rest
    numbers = [int(event.id.rsplit("-", 1)[1]) for event in events]
    assert numbers == list(range(1, len(events) + 1))  # in order, no gap, no duplicate
    assert all(event.id.startswith(run_id[:8] + "-") for event in events)
    assert [event.event for event in events][-2:] == ["complete", "disconnect"]
    chunks = "".join(event.json()["content"]["content"] for event in events if event.event == "chunk")
    assert chunks == TEXT
    replay = await _read(run_client, run_id)  # a finished run replays whole while it is retained
    assert [(event.id, event.data) for event in replay] == [(event.id, event.data) for event in events]


async def test_resume_through_the_query_parameter(run_client: TestClient) -> None:
    run_id = await _start(run_client, "StreamText", {"text": TEXT, "delay_ms": 0})
    everything = await _read(run_client, run_id)
    tail = await _read(run_client, run_id, query=f"?last_event_id={everything[5].id}")
    assert [event.id for event in tail] == [event.id for event in everything[6:]]


async def test_foreign_and_malformed_ids_are_refused(run_client: TestClient) -> None:
    one = await _start(run_client, "Echo", {"text": "a"})
    other = await _start(run_client, "Echo", {"text": "b"})
    foreign = (await _read(run_client, other))[0].id
    response = await run_client.get(f"/api/mcp/v2/runs/{one}/events", headers={"Last-Event-ID": foreign})
    assert response.status == 400 and (await response.json())["code"] == "foreign_event_id"
    response = await run_client.get(f"/api/mcp/v2/runs/{one}/events?last_event_id={one[:8]}-x")
    assert response.status == 400 and (await response.json())["code"] == "invalid_event_id"


async def test_unknown_run(run_client: TestClient) -> None:
    unknown = "0" * 32
    assert (await run_client.get(f"/api/mcp/v2/runs/{unknown}/events")).status == 204
    response = await run_client.get(f"/api/mcp/v2/runs/{unknown}")
    assert response.status == 404 and (await response.json())["code"] == "unknown_run"
    assert (await run_client.delete(f"/api/mcp/v2/runs/{unknown}")).status == 404


async def test_status_cancel_and_retention(run_client: TestClient) -> None:
    run_id = await _start(run_client, "Wait", {"seconds": 30})
    status = await (await run_client.get(f"/api/mcp/v2/runs/{run_id}")).json()
    assert status["status"] == "running" and status["tool_name"] == "Wait" and status["finished"] is None
    response = await run_client.delete(f"/api/mcp/v2/runs/{run_id}")
    assert response.status == 202
    events = await _read(run_client, run_id)
    assert events[-2].event == "error" and events[-2].json()["code"] == "cancelled"
    status = await (await run_client.get(f"/api/mcp/v2/runs/{run_id}")).json()
    assert status["status"] == "cancelled" and status["finished"] is not None
    assert (await run_client.delete(f"/api/mcp/v2/runs/{run_id}")).status == 409
    await asyncio.sleep(1.1)  # retention is 0.5 s in these tests (Redis expiry has 1 s resolution)
    assert (await run_client.get(f"/api/mcp/v2/runs/{run_id}")).status == 404
    assert (await run_client.get(f"/api/mcp/v2/runs/{run_id}/events")).status == 204


async def test_detached_run_finishes_without_subscribers(run_client: TestClient) -> None:
    run_id = await _start(run_client, "Echo", {"text": "alone"})
    assert await _final_status(run_client, run_id) == "complete"
    events = await _read(run_client, run_id)
    assert events[-2].json()["result"] == {"text": "alone"}


async def _connected(client: TestClient, body: dict[str, Any]) -> tuple[Any, ServerSentEvent]:
    response = await client.post("/api/mcp/v2/stream", json=body)
    parser = SSEParser()
    async for data in response.content.iter_any():
        events = parser.feed(data)
        if events:
            return response, events[0]
    raise AssertionError("no connected event")


async def test_stream_with_resume_grace_survives_a_drop(run_client: TestClient) -> None:
    body = {"tool_name": "StreamText", "arguments": {"text": TEXT, "delay_ms": 20},
            "stream_options": {"resume_grace_s": 5}}
    response, connected = await _connected(run_client, body)
    run_id = connected.json()["run_id"]
    response.close()
    await asyncio.sleep(0.2)  # the client is gone; the run goes on
    rest = await _read(run_client, run_id, headers={"Last-Event-ID": connected.id})
    assert rest[0].id == f"{run_id[:8]}-2"
    assert [event.event for event in rest][-2:] == ["complete", "disconnect"]


async def test_stream_without_a_returning_client_is_cancelled_after_the_grace(run_client: TestClient) -> None:
    body = {"tool_name": "Wait", "arguments": {"seconds": 30}, "stream_options": {"resume_grace_s": 0.2}}
    response, connected = await _connected(run_client, body)
    run_id = connected.json()["run_id"]
    response.close()
    await asyncio.sleep(0.1)
    assert (await (await run_client.get(f"/api/mcp/v2/runs/{run_id}")).json())["status"] == "running"
    events = await _read(run_client, run_id, headers={"Last-Event-ID": connected.id}, limit=1)
    await asyncio.sleep(0.5)  # that subscriber left too; the grace runs out
    status = await (await run_client.get(f"/api/mcp/v2/runs/{run_id}")).json()
    assert status["status"] == "cancelled"
    assert events


async def test_bad_resume_grace_is_refused(run_client: TestClient) -> None:
    response = await run_client.post("/api/mcp/v2/stream", json={
        "tool_name": "Echo", "arguments": {"text": "a"}, "stream_options": {"resume_grace_s": -1}})
    assert response.status == 400 and "resume_grace_s" in (await response.json())["error"]


async def test_plain_stream_disconnect_still_cancels(run_client: TestClient) -> None:
    response, connected = await _connected(run_client, {"tool_name": "Wait", "arguments": {"seconds": 30}})
    run_id = connected.json()["run_id"]
    response.close()
    assert await _final_status(run_client, run_id) == "cancelled"
    events = await _read(run_client, run_id)
    assert events[-2].json()["code"] == "client_disconnected"


async def test_test_stream_is_not_a_run(run_client: TestClient) -> None:
    async with run_client.get("/api/mcp/v2/stream/test?count=2&interval_ms=0") as response:
        events = await read_events(response)
    assert [event.id for event in events] == [str(n) for n in range(1, len(events) + 1)]
