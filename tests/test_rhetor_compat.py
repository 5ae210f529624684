"""A client written against the original Rhetor works unmodified: its tool names, argument names,
message types, orchestration styles and specialist ids, end to end through /stream and /process."""
from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import MakeClient, post_stream, read_events
from tests.fake_upstream import Upstream

ORIGINAL_IDS = ("rhetor-orchestrator", "apollo-coordinator", "engram-memory", "prometheus-strategist")
NOTED = [b'data: {"choices":[{"delta":{"content":"Noted."}}]}\n\n'
         b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n']


async def process(client: TestClient, tool_name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/mcp/v2/process", json={"tool_name": tool_name, "arguments": arguments})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    assert body["success"], body
    return body


async def test_the_schema_shows_the_original_names_as_deprecated_aliases(client: TestClient) -> None:
    tools = {tool["name"]: tool["input_schema"]["properties"]
             for tool in await (await client.get("/api/mcp/v2/tools")).json()}
    expected = {"SendMessageToSpecialist": {"context_id": "conversation_id"},
                "SendMessageToSpecialistStream": {"context_id": "conversation_id"},
                "OrchestrateTeamChat": {"max_rounds": "rounds"},
                "OrchestrateTeamChatStream": {"max_rounds": "rounds"},
                "ListAISpecialists": {"filter_by_status": "status", "filter_by_type": "role",
                                      "filter_by_component": "component"}}
    for tool, aliases in expected.items():
        for alias, name in aliases.items():
            assert tools[tool][alias]["deprecated"] is True and f"'{name}'" in tools[tool][alias]["description"]
            assert "deprecated" not in tools[tool][name]
    assert tools["OrchestrateTeamChatStream"]["orchestration_style"]["enum"] == [
        "collaborative", "directive", "exploratory"]
    assert {"coordination", "task_assignment"} <= set(tools["SendMessageToSpecialist"]["message_type"]["enum"])


@pytest.mark.parametrize("tool, arguments, alias", [
    ("SendMessageToSpecialistStream", {"specialist_id": "planner", "message": "hi", "context_id": "a",
                                       "conversation_id": "b"}, "context_id"),
    ("OrchestrateTeamChatStream", {"topic": "t", "rounds": 1, "max_rounds": 2}, "max_rounds"),
])
async def test_both_spellings_of_one_argument_is_a_400(client: TestClient, tool: str, arguments: dict[str, Any],
                                                        alias: str) -> None:
    response = await client.post("/api/mcp/v2/stream", json={"tool_name": tool, "arguments": arguments})
    body = await response.json()
    assert response.status == 400 and body["argument"] == alias and "only one" in body["error"]


async def test_a_bad_value_under_the_old_name_is_named_as_sent(client: TestClient) -> None:
    response = await client.post("/api/mcp/v2/process", json={
        "tool_name": "OrchestrateTeamChat", "arguments": {"topic": "t", "max_rounds": 99}})
    body = await response.json()
    assert response.status == 400 and body["argument"] == "max_rounds" and "at most 10" in body["error"]


async def test_original_specialist_call_through_stream(client: TestClient) -> None:
    events = await post_stream(client, "SendMessageToSpecialistStream", {
        "specialist_id": "apollo-coordinator", "message": "Who should take the release checklist?",
        "context_id": None, "message_type": "coordination"})
    assert [event.event for event in events][-2:] == ["complete", "disconnect"]
    result = events[-2].json()["result"]
    assert result["specialist"] == "apollo-coordinator" and result["content"].split("\n")[2].startswith(
        "Coordination on")


async def test_context_id_keys_the_conversation_memory(make_client: MakeClient, upstream: Upstream) -> None:
    client = await make_client(provider="openai", openai_base_url=upstream.url, openai_api_key="k")
    upstream.chunks = NOTED
    for message in ("Remember: the launch is on Friday.", "When is the launch?"):
        await process(client, "SendMessageToSpecialist", {"specialist_id": "engram-memory", "message": message,
                                                          "context_id": "release-7",
                                                          "message_type": "task_assignment"})
    first, second = upstream.requests
    assert [m["content"] for m in second["messages"][1:]] == [
        "Remember: the launch is on Friday.", "Noted.", "When is the launch?"]
    system = first["messages"][0]["content"]
    assert "Task type: task_assignment" in system and "task assigned to you" in system


async def test_original_team_chat_through_stream_opens_with_the_initial_prompt(client: TestClient) -> None:
    events = await post_stream(client, "OrchestrateTeamChatStream", {
        "topic": "Moving the event store to Redis", "specialists": ["engram-memory", "prometheus-strategist"],
        "initial_prompt": "We have two weeks and one engineer.", "max_rounds": 1,
        "orchestration_style": "collaborative"})
    messages = [event.json() for event in events if event.event == "message"]
    assert [(m["speaker"], m["round"]) for m in messages] == [
        ("rhetor-orchestrator", 0), ("engram-memory", 1), ("prometheus-strategist", 1), ("rhetor-orchestrator", 1)]
    assert messages[0]["opening"] is True and messages[-1]["summary"] is True
    progress = [event.json() for event in events if event.event == "progress"]
    assert progress[-1]["turns_done"] == progress[-1]["turns_planned"] == 4
    result = events[-2].json()["result"]
    assert result["orchestration_style"] == "collaborative" and result["initial_prompt"].startswith("We have")


async def test_original_team_chat_through_process(client: TestClient) -> None:
    body = await process(client, "OrchestrateTeamChat", {
        "topic": "Naming the new service", "specialists": ["apollo-coordinator", "engram-memory"],
        "initial_prompt": "Short names only.", "max_rounds": 2, "orchestration_style": "exploratory"})
    turns = [(turn["speaker"], turn["round"]) for turn in body["result"]["transcript"]]
    # Exploratory: the speaking order rotates each round.
    assert turns == [("rhetor-orchestrator", 0), ("apollo-coordinator", 1), ("engram-memory", 1),
                     ("engram-memory", 2), ("apollo-coordinator", 2), ("rhetor-orchestrator", 2)]


async def test_directive_style_has_the_coordinator_assign_each_round(client: TestClient) -> None:
    events = await post_stream(client, "OrchestrateTeamChatStream", {
        "topic": "Release plan", "specialists": ["planner", "critic"], "rounds": 2,
        "orchestration_style": "directive"})
    messages = [event.json() for event in events if event.event == "message"]
    assert [(m["speaker"], m["round"], m.get("assignment", False)) for m in messages] == [
        ("rhetor-orchestrator", 1, True), ("planner", 1, False), ("critic", 1, False),
        ("rhetor-orchestrator", 2, True), ("planner", 2, False), ("critic", 2, False),
        ("rhetor-orchestrator", 2, False)]
    # The specialists carry out tasks: the task_assignment message type shapes their answers.
    assert messages[1]["content"].split("\n")[2].startswith("Task:")


async def test_each_style_asks_something_else_of_the_specialists(make_client: MakeClient,
                                                                 upstream: Upstream) -> None:
    client = await make_client(provider="openai", openai_base_url=upstream.url, openai_api_key="k")
    upstream.chunks = NOTED
    asked: dict[str, tuple[str, str]] = {}
    for style in ("collaborative", "directive", "exploratory"):
        upstream.requests.clear()
        await process(client, "OrchestrateTeamChat", {"topic": "t", "specialists": ["critic"], "max_rounds": 1,
                                                      "orchestration_style": style})
        turn, summary = upstream.requests[-2:]
        asked[style] = (turn["messages"][-1]["content"].split("\n")[-1],
                        summary["messages"][-1]["content"].split("\n")[-1])
    assert len({turn for turn, _ in asked.values()}) == 3 and len({summary for _, summary in asked.values()}) == 3


async def test_list_ai_specialists_with_the_original_filters(client: TestClient) -> None:
    everyone = (await process(client, "ListAISpecialists", {}))["result"]
    assert set(ORIGINAL_IDS) <= {entry["id"] for entry in everyone}
    originals = [entry for entry in everyone if entry["id"] in ORIGINAL_IDS]
    assert len({entry["role"] for entry in originals}) == 4 and all(entry["description"] for entry in originals)
    assert [e["id"] for e in (await process(client, "ListAISpecialists", {
        "filter_by_component": "Engram"}))["result"]] == ["engram-memory"]
    assert [e["id"] for e in (await process(client, "ListAISpecialists", {
        "filter_by_type": "strategist"}))["result"]] == ["prometheus-strategist"]
    assert len((await process(client, "ListAISpecialists", {"filter_by_status": "active"}))["result"]) == len(everyone)
    assert (await process(client, "ListAISpecialists", {"filter_by_status": "inactive"}))["result"] == []
    assert (await process(client, "ListSpecialists", {"component": "apollo"}))["result"][0]["id"] == \
        "apollo-coordinator"


async def test_the_test_stream_complete_carries_a_message(client: TestClient) -> None:
    async with client.get("/api/mcp/v2/stream/test?count=2&interval_ms=0") as response:
        events = await read_events(response)
    assert events[-2].event == "complete" and events[-2].json()["message"].startswith("stream_test completed in ")


async def test_the_token_budget_counts_the_coordinators_turns(make_client: MakeClient) -> None:
    # planner 700 + critic 600 per round, 2 rounds; coordinator 600 a turn: opening, 2 assignments, summary.
    client = await make_client(key_max_tokens=2 * 1300 + 4 * 600)
    arguments = {"topic": "t", "specialists": ["planner", "critic"], "max_rounds": 2, "initial_prompt": "p",
                 "orchestration_style": "directive"}
    assert (await client.post("/api/mcp/v2/process", json={
        "tool_name": "OrchestrateTeamChat", "arguments": arguments})).status == 200
    refused = await client.post("/api/mcp/v2/process", json={
        "tool_name": "OrchestrateTeamChat", "arguments": {**arguments, "max_rounds": 3}})
    assert refused.status == 429 and str(2 * 1300 + 4 * 600) in (await refused.json())["error"]
