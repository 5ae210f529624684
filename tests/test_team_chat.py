"""Team chat with the simulated provider: both modes, progress, timeouts, cancellation mid-turn."""
from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from rhetor_stream.sse.parser import SSEParser
from tests.conftest import MakeClient, post_stream


async def test_round_robin_streams_turns_and_summary(client: TestClient) -> None:
    events = await post_stream(client, "OrchestrateTeamChatStream",
                               {"topic": "Caching LLM answers", "specialists": ["planner", "critic"], "rounds": 2})
    messages = [event.json() for event in events if event.event == "message"]
    assert [(m["speaker"], m["round"]) for m in messages] == [
        ("planner", 1), ("critic", 1), ("planner", 2), ("critic", 2), ("rhetor-orchestrator", 2)]
    assert messages[-1]["summary"] is True
    # The chunks of each turn come before its message and join into it.
    chunks: list[dict[str, Any]] = []
    for event in events:
        if event.event == "chunk":
            chunks.append(event.json()["content"])
        elif event.event == "message":
            message = event.json()
            assert "".join(c["content"] for c in chunks) == message["content"]
            assert {c["specialist"] for c in chunks} == {message["speaker"]}
            chunks = []
    percentages = [event.json()["percentage"] for event in events if event.event == "progress"]
    assert percentages == sorted(percentages) and percentages[-1] == 100
    result = events[-2].json()["result"]
    assert len(result["transcript"]) == 5 and result["summary"] == messages[-1]["content"]


async def test_parallel_mode_sends_each_answer_when_ready(client: TestClient) -> None:
    events = await post_stream(client, "OrchestrateTeamChatStream",
                               {"topic": "Release plan", "rounds": 1, "mode": "parallel"})
    messages = [event.json() for event in events if event.event == "message"]
    assert {m["speaker"] for m in messages[:-1]} == {"code-reviewer", "researcher", "planner", "critic",
                                                     "apollo-coordinator", "engram-memory", "prometheus-strategist"}
    assert not any(event.event == "chunk" for event in events)  # parallel answers arrive whole
    assert events[-2].event == "complete"


async def test_a_stuck_specialist_becomes_an_error_flagged_message(make_client: MakeClient) -> None:
    client = await make_client(simulated_tokens_per_s=20.0, specialist_timeout=0.3)
    events = await post_stream(client, "OrchestrateTeamChatStream",
                               {"topic": "Slow talk", "specialists": ["critic"], "rounds": 1, "mode": "parallel"})
    message = next(event.json() for event in events if event.event == "message")
    assert message["code"] == "upstream_timeout" and "0.3" in message["error"]
    assert events[-2].event == "complete"


async def test_non_streaming_team_chat(client: TestClient) -> None:
    body = await (await client.post("/api/mcp/v2/process", json={
        "tool_name": "OrchestrateTeamChat", "arguments": {"topic": "Naming", "specialists": ["researcher"],
                                                          "rounds": 1}})).json()
    assert body["success"] and [m["speaker"] for m in body["result"]["transcript"]] == [
        "researcher", "rhetor-orchestrator"]


async def test_cancellation_mid_turn(make_client: MakeClient) -> None:
    client = await make_client(simulated_tokens_per_s=50.0)
    response = await client.post("/api/mcp/v2/stream", json={
        "tool_name": "OrchestrateTeamChatStream", "arguments": {"topic": "Long debate", "rounds": 3}})
    parser = SSEParser()
    async for data in response.content.iter_any():
        if any(event.event == "chunk" for event in parser.feed(data)):
            break
    response.close()
    for _ in range(100):
        if (await (await client.get("/health")).json())["active_tools"] == 0:
            break
        await asyncio.sleep(0.01)
    assert (await (await client.get("/health")).json())["active_tools"] == 0


async def test_offline_specialists_answer_each_in_their_own_manner(client: TestClient) -> None:
    body = await (await client.post("/api/mcp/v2/process", json={
        "tool_name": "OrchestrateTeamChat",
        "arguments": {"topic": "Should the event store move to Redis Streams?", "rounds": 1,
                      "specialists": ["code-reviewer", "researcher", "planner", "critic"]}})).json()
    titles = {turn["speaker"]: turn["content"].split("\n")[2] for turn in body["result"]["transcript"]}
    assert titles["code-reviewer"].startswith("Review of \u201cShould the event store move to Redis Streams")
    assert titles["researcher"].startswith("Analysis of")
    assert titles["planner"].startswith("Plan for")
    assert titles["critic"].startswith("Critique of")
